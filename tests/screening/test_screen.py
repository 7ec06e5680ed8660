from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preflight import Gate, Policy, codes, screen
from preflight.errors import InvalidSourceError, ModelError, SourceNotFoundError
from preflight.report import Report
from preflight.screening import Screening, Summary, find_images
from preflight.table import OutputFileError, labelled, policy_fingerprint, read_rows, to_records, write_table

from . import _hooks
from ._dataset import CORRUPT, NOT_IMAGES

#: File rules only (no face model): quick to start, for tests about the machinery.
FILE_POLICY = dataclasses.replace(Policy(), check_face=False, check_sharpness=False, check_exposure=False)


def _by_source(reports: list[Report]) -> dict[str, Report]:
    return {r.source: r for r in reports if r.source is not None}


def test_find_images_is_recursive_and_filters_by_extension(dataset: Path, dataset_paths: list[str]) -> None:
    assert len(dataset_paths) >= 200
    assert len(set(dataset_paths)) == len(dataset_paths)
    names = {os.path.relpath(p, dataset) for p in dataset_paths}
    assert set(CORRUPT) <= names
    assert not set(NOT_IMAGES) & names
    assert any(n.endswith("upper.JPG") for n in names)  # extensions in any case
    assert all(p.startswith(str(dataset)) for p in dataset_paths)
    # globs (with **), explicit files and folders; duplicates dropped, order kept
    jpgs = find_images(str(dataset / "**" / "*.jpg"))
    assert jpgs and all(p.endswith(".jpg") for p in jpgs) and set(jpgs) < set(dataset_paths)
    explicit = str(dataset / "notes.txt")
    assert find_images(explicit, dataset / "broken", explicit)[0] == explicit
    with pytest.raises(SourceNotFoundError):
        find_images(dataset / "no_such_folder")
    with pytest.raises(SourceNotFoundError):
        find_images(str(dataset / "*.nothing"))


def _tree(root: Path) -> None:
    for name in ["a/1.jpg", "a/b/2.jpg", "a/b/c/3.png", "a/.hidden/4.jpg", "a/.5.jpg", "a/x.txt", "d/6.JPG", "7.jpg"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not read")


@pytest.mark.parametrize("pattern", ["**/*.jpg", "a/**/*.jpg", "a/**", "*/b/**/*.png", "a/**/b", "**", "a/*",
                                     "a/**/.*.jpg", "*/**/c/*", "**/*.JPG", "a/b/**/*.png", "a/**/../*.jpg",
                                     "a/**/./*.png", "./a/*/*.jpg", "a/**/", "[ad]/**/*.[jJ]*", "a//b/*.jpg",
                                     "**/*.jpg/", "a/b/../.*.jpg"])
def test_glob_patterns_match_what_glob_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str) -> None:
    import glob

    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    exts = {".jpg", ".png"}
    for p in (pattern, str(tmp_path / pattern)):
        expected: set[str] = set()
        for match in glob.glob(p, recursive=True):
            if os.path.isdir(match):
                for root, _, files in os.walk(match):
                    for f in files:
                        below = os.path.relpath(os.path.join(root, f), match).split(os.sep)
                        if os.path.splitext(f)[1].lower() in exts and not any(n.startswith(".") for n in below):
                            expected.add(os.path.join(root, f))
            elif os.path.splitext(match)[1].lower() in exts:
                expected.add(match)
        expected = {os.path.normpath(e) for e in expected}
        if not expected:
            with pytest.raises(SourceNotFoundError):
                find_images(p)
            continue
        found = find_images(p)
        assert len(found) == len(set(found)) and {os.path.normpath(f) for f in found} == expected, p


def test_symlinked_folders_are_followed_once_and_loops_end(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")      # a loop
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")          # a second one
    (tmp_path / "d" / "b_again").symlink_to(tmp_path / "a" / "b")  # the same folder by another name
    (tmp_path / "linked").symlink_to(tmp_path / "a" / "b" / "c")
    names = ["7.jpg", "a/1.jpg", "a/b/2.jpg", "a/b/c/3.png", "d/6.JPG"]
    # glob.glob(..., recursive=True) would list these forever (or until the paths are too long)
    for pattern in (str(tmp_path), str(tmp_path / "**" / "*.*"), str(tmp_path / "**")):
        found = find_images(pattern)
        assert len(found) == len(set(found))
        assert sorted({os.path.relpath(os.path.realpath(f), tmp_path) for f in found}) == names
        assert len(found) == len(names), found  # each file once, under the first name met
    assert find_images(tmp_path / "linked") == [str(tmp_path / "linked" / "3.png")]  # a link given is followed
    # a pattern that names a link finds what is behind it, even when the folder was met first by its own name
    (tmp_path / "a" / "zz").symlink_to(tmp_path / "a" / "b" / "c")
    for pattern in ("a/**/zz/*.png", "**/zz/*.png"):
        assert find_images(tmp_path / pattern) == [str(tmp_path / "a" / "zz" / "3.png")]


def test_a_folder_that_cannot_be_listed_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from preflight.errors import SourceReadError

    _tree(tmp_path)
    real_scandir = os.scandir
    locked = str(tmp_path / "a" / "b")

    def scandir(path: str = ".") -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    # leaving its photos out silently would under-report the dataset
    for pattern in (str(tmp_path), str(tmp_path / "**" / "*.jpg"), str(tmp_path / "a" / "*"),
                    str(tmp_path / "a" / "*" / "*.jpg"), str(tmp_path / "a" / "b" / "*.jpg")):
        with pytest.raises(SourceReadError, match=f"cannot list the folder {locked}: Permission denied"):
            find_images(pattern)
    assert len(find_images(tmp_path / "d", tmp_path / "7.jpg")) == 2


def test_reports_come_in_input_order_with_their_source(local_run: tuple[list[Report], Screening],
                                                       dataset_paths: list[str]) -> None:
    reports, run = local_run
    assert [r.source for r in reports] == dataset_paths
    assert run.screened == len(dataset_paths) and run.skipped == 0 and run.total == len(dataset_paths)


def test_corrupt_files_are_reports_and_the_run_goes_on(local_run: tuple[list[Report], Screening],
                                                       dataset: Path) -> None:
    reports, _ = local_run
    by_source = _by_source(reports)
    for name in CORRUPT:
        report = by_source[str(dataset / name)]
        assert codes.FAILED_TO_READ_IMAGE in report.codes, name
        assert not report.passed
    summary = Summary.of(reports)
    assert summary.count == len(reports) and summary.failed > 0
    # a mix: most files are fine as files (whatever the face calibration makes of them), some are not
    file_codes = {codes.FAILED_TO_READ_IMAGE, codes.UNSUPPORTED_FORMAT, codes.RESOLUTION_TOO_LOW,
                  codes.JPEG_QUALITY_TOO_LOW}
    assert sum(not (r.codes & file_codes) for r in reports) >= 100
    counted = dict(summary.code_counts)
    assert counted[codes.FAILED_TO_READ_IMAGE] >= len(CORRUPT)
    assert counted[codes.UNSUPPORTED_FORMAT] >= 30 and counted[codes.JPEG_QUALITY_TOO_LOW] >= 10


def test_worker_processes_give_the_same_reports_as_one_process(local_run: tuple[list[Report], Screening],
                                                               dataset_paths: list[str]) -> None:
    reports, _ = local_run
    subset = dataset_paths[::9]
    with screen(subset, workers=1, progress=False) as run:
        inline = list(run)
    assert inline == [r for r in reports if r.source in set(subset)]  # every field, floats exactly
    with Gate() as gate:
        assert gate.check(subset[0], name=subset[0]) == inline[0]
    assert set(run.worker_stats) == {os.getpid()}


def test_model_is_built_once_per_worker_process(local_run: tuple[list[Report], Screening]) -> None:
    reports, run = local_run
    stats = run.worker_stats
    assert 1 <= len(stats) <= 2 and os.getpid() not in stats
    for pid, s in stats.items():
        assert len(s.gates) == 1, (pid, s)  # one Gate (and so one model) per process, for all its chunks
    assert sum(s.images for s in stats.values()) == len(reports)
    assert sum(s.chunks for s in stats.values()) > 2 * len(stats)
    assert max(s.chunks for s in stats.values()) > 1


def test_a_check_that_raises_or_a_missing_file_is_a_report(tmp_path: Path, samples: Path) -> None:
    sources = []
    for i in range(6):
        shutil.copy(samples / "obama-720p.jpg", tmp_path / f"ok{i}.jpg")
        sources.append(str(tmp_path / f"ok{i}.jpg"))
    shutil.copy(samples / "obama-720p.jpg", tmp_path / "boom.jpg")
    sources.insert(3, str(tmp_path / "boom.jpg"))
    sources.insert(5, str(tmp_path / "vanished.jpg"))
    with Screening(sources, policy=FILE_POLICY, workers=2, progress=False, check=_hooks.raising_check) as run:
        reports = list(run)
    assert [r.source for r in reports] == sources
    boom, vanished = reports[3], reports[5]
    assert boom.codes == {codes.FAILED_TO_READ_IMAGE}
    assert "RuntimeError: decoder exploded" in boom.issues[0].message
    assert vanished.codes == {codes.FAILED_TO_READ_IMAGE} and "no such file" in vanished.issues[0].message
    assert all(r.passed for i, r in enumerate(reports) if i not in (3, 5))


def test_a_worker_that_dies_costs_one_report_not_the_run(tmp_path: Path, samples: Path) -> None:
    sources = []
    for i in range(10):
        shutil.copy(samples / "obama-720p.jpg", tmp_path / f"ok{i}.jpg")
        sources.append(str(tmp_path / f"ok{i}.jpg"))
    shutil.copy(samples / "obama-720p.jpg", tmp_path / "die.jpg")
    sources.insert(4, str(tmp_path / "die.jpg"))
    with Screening(sources, policy=FILE_POLICY, workers=2, progress=False, check=_hooks.dying_check) as run:
        reports = list(run)
    assert [r.source for r in reports] == sources
    died = reports[4]
    assert died.codes == {codes.FAILED_TO_READ_IMAGE} and "worker process" in died.issues[0].message
    with Gate(FILE_POLICY) as gate:
        expected = labelled(gate.check(sources[0], name=sources[0]), FILE_POLICY)  # the preset's name, other values
    assert expected.policy == died.policy == f"progeny_selfie#{policy_fingerprint(FILE_POLICY)}"
    for report in reports[:4] + reports[5:]:
        assert dataclasses.replace(report, source=sources[0]) == expected


UNGUARDED_SCRIPT = """
import dataclasses, sys
from preflight import Policy, screen
policy = dataclasses.replace(Policy(), check_face=False, check_sharpness=False, check_exposure=False)
with screen(sys.argv[2:], workers=2, progress=False, out=sys.argv[1], policy=policy) as run:
    for report in run:
        print(report.source, report.passed)
"""


def test_a_script_without_a_main_guard_gets_a_clear_error_and_no_rows(tmp_path: Path, samples: Path) -> None:
    # with spawn, every worker imports the script, which starts a screening of its own and dies;
    # that used to be recorded as one "worker process died" row per image, saved and never rechecked
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    out = tmp_path / "results.csv"
    sources = [str(samples / "obama-720p.jpg"), str(samples / "obama-480p.jpg"), str(samples / "biden.jpg")]
    done = subprocess.run([sys.executable, str(script), str(out), *sources], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("preflight.errors.WorkerStartError: the worker processes died while starting")
    assert 'if __name__ == "__main__":' in last
    assert read_rows(out) == []
    # the same script with the guard screens the three images
    guarded = "".join(f"    {line}\n" for line in UNGUARDED_SCRIPT.splitlines())
    script.write_text("if __name__ == '__main__':\n" + guarded)
    done = subprocess.run([sys.executable, str(script), str(out), *sources], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.rsplit(" ", 1)[0] for line in done.stdout.splitlines()] == sources
    assert [row["source"] for row in read_rows(out)] == sources


def test_resume_skips_what_is_in_the_output(tmp_path: Path, dataset_paths: list[str],
                                            local_run: tuple[list[Report], Screening]) -> None:
    subset = dataset_paths[:60]
    out = tmp_path / "results.jsonl"
    with screen(subset[:25], workers=2, progress=False, out=out) as first:
        assert len(list(first)) == 25
    with screen(subset, workers=2, progress=False, out=out) as second:
        again = list(second)
    assert second.skipped == 25 and second.total == 35
    assert [r.source for r in again] == subset[25:]
    expected = [r for r in local_run[0] if r.source in set(subset)]
    assert read_rows(out) == to_records(expected)  # each image once, same values as the full run
    with screen(subset, workers=2, progress=False, out=out) as third:
        assert list(third) == [] and third.skipped == 60


def test_resume_with_a_lazy_iterable(tmp_path: Path, dataset_paths: list[str]) -> None:
    subset = dataset_paths[60:80]
    out = tmp_path / "results.parquet"
    with screen(subset[:5], workers=1, progress=False, out=out, policy=FILE_POLICY) as first:
        list(first)
    with screen((p for p in subset), workers=2, progress=False, out=out, policy=FILE_POLICY) as second:
        assert second.total is None
        assert [r.source for r in second] == subset[5:]
    assert second.skipped == 5
    assert [r["source"] for r in read_rows(out)] == subset


def test_stopping_early_keeps_the_finished_work(tmp_path: Path, dataset_paths: list[str],
                                                local_run: tuple[list[Report], Screening]) -> None:
    subset = dataset_paths[100:160]
    out = tmp_path / "results.csv"
    seen = 0
    with pytest.raises(KeyboardInterrupt), screen(subset, workers=2, progress=False, out=out, chunksize=2) as run:
        for seen, _ in enumerate(run, start=1):
            if seen == 10:
                raise KeyboardInterrupt  # as Ctrl-C in the caller's loop
    rows = read_rows(out)
    sources = [r["source"] for r in rows]
    assert seen == 10 and len(sources) == len(set(sources)) == run.screened
    assert sources[:10] == subset[:10]  # what was handed out, plus what had finished meanwhile
    expected = {r.source: r for r in local_run[0]}
    assert rows == to_records([expected[s] for s in sources])
    with screen(subset, workers=2, progress=False, out=out) as rest:
        list(rest)
    assert rest.skipped == len(sources)
    assert sorted(r["source"] for r in read_rows(out)) == sorted(subset)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_file_names_that_are_not_utf8_are_written_and_resumed(tmp_path: Path, samples: Path, suffix: str) -> None:
    """A name with a Latin-1 byte (common on old archives and USB sticks) reaches Python with a lone
    surrogate; every output format must still take it, and a resumed run must recognise it."""
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.jpg")
    shutil.copy(samples / "obama.jpg", folder / odd)
    shutil.copy(samples / "obama.jpg", folder / "plain.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    paths = find_images(folder)
    out = tmp_path / f"results{suffix}"
    with screen(paths, workers=1, progress=False, out=out, policy=FILE_POLICY) as run:
        reports = list(run)
    assert {r.source for r in reports} == {str(folder / odd), str(folder / "plain.jpg"), str(folder / "broken.jpg")}
    rows = {row["source"]: row for row in read_rows(out)}
    assert set(rows) == {str(folder / "caf\\xe9.jpg"), str(folder / "plain.jpg"), str(folder / "broken.jpg")}
    assert rows[str(folder / "caf\\xe9.jpg")]["passed"] is True
    with screen(paths, workers=1, progress=False, out=out, policy=FILE_POLICY) as again:
        assert list(again) == [] and again.skipped == 3
    with screen(iter(paths), workers=1, progress=False, out=out, policy=FILE_POLICY) as lazily:
        assert list(lazily) == [] and lazily.skipped == 3
    # the report's JSON and text forms are valid Unicode too (a strict UTF-8 stdout would raise otherwise)
    odd_report = next(r for r in reports if r.source == str(folder / odd))
    assert json.dumps(odd_report.to_dict(), ensure_ascii=False).encode("utf-8")
    assert "caf\\xe9.jpg" in odd_report.to_dict()["source"]
    str(odd_report).encode("utf-8")


def test_progress_bar_on_stderr(tmp_path: Path, dataset_paths: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with screen(dataset_paths[:12], workers=1, policy=FILE_POLICY, progress=True) as run:
        list(run)
    err = capsys.readouterr().err
    assert "screening" in err and "12/12" in err
    with screen(dataset_paths[:3], workers=1, policy=FILE_POLICY, progress=False) as run:
        list(run)
    assert capsys.readouterr().err == ""


def test_bad_arguments(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(InvalidSourceError):
        screen(str(dataset))  # a folder is not a list of paths: find_images() it
    with pytest.raises(InvalidSourceError):
        screen([b"\xff\xd8 bytes are not a path"])
    with pytest.raises(ValueError):
        screen([], workers=0)
    with pytest.raises(OutputFileError):
        screen([], out=tmp_path / "results.xlsx")
    other = write_table([{"source": "a.jpg", "policy": "progeny_document", "passed": True}], tmp_path / "doc.jsonl")
    with pytest.raises(OutputFileError, match="progeny_document"):
        screen(["a.jpg"], out=other)
    assert screen(["a.jpg"], out=other, resume=False).total == 1  # starting anew is allowed


def test_summary_format() -> None:
    rows = [{"passed": True, "code_EXIF_ROTATED": True}, {"passed": False, "code_FACE_TOO_SMALL": True},
            {"passed": False, "code_FACE_TOO_SMALL": True, "code_EXIF_ROTATED": True}]
    summary = Summary.of(rows)
    assert (summary.count, summary.passed, summary.failed) == (3, 1, 2)
    assert summary.code_counts == (("EXIF_ROTATED", 2), ("FACE_TOO_SMALL", 2))
    text = summary.format(locale="en")
    assert "passed: 1 (33.3%)" in text and "FACE_TOO_SMALL" in text


def test_a_model_that_does_not_load_is_an_error_not_a_report(tmp_path: Path, dataset_paths: list[str]) -> None:
    bad = tmp_path / "broken.task"
    bad.write_bytes(b"not a model")
    for workers in (1, 2):
        with pytest.raises(ModelError), screen(dataset_paths[20:30], workers=workers, progress=False,
                                               model_path=bad) as run:
            list(run)


def test_import_preflight_stays_light() -> None:
    """screen and to_table are exported without importing pandas, pyarrow, dask or tqdm."""
    code = ("import sys, preflight; assert preflight.screen and preflight.to_table; "
            "print(sorted({'dask', 'distributed', 'pandas', 'pyarrow', 'tqdm', 'fsspec'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_timeline_counts_every_image(local_run: tuple[list[Report], Screening]) -> None:
    reports, run = local_run
    times = [t for t, _ in run.timeline]
    counts = [n for _, n in run.timeline]
    assert times == sorted(times) and counts == sorted(counts) and counts[-1] == len(reports)
    assert len(run.timeline) == sum(s.chunks for s in run.worker_stats.values())
