from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preflight.cli import main
from preflight.table import journal_path, read_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def small_folder(tmp_path: Path, dataset: Path) -> Path:
    """24 images of the dataset (some pass, some fail, two corrupt) in nested folders."""
    folder = tmp_path / "photos"
    picked = [p for p in sorted((dataset / "variants").rglob("*")) if p.is_file()][:22]
    for src in [*picked, dataset / "broken/empty_1.jpg", dataset / "broken/truncated_2.jpg"]:
        dst = folder / src.relative_to(dataset)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return folder


def test_screen_writes_the_table_and_prints_a_summary(small_folder: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.csv"
    code = main(["screen", str(small_folder), "--out", str(out), "--workers", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1  # some images fail
    rows = read_rows(out)
    assert len(rows) == 24 == len({r["source"] for r in rows})
    n_passed = sum(r["passed"] for r in rows)
    assert f"images: 24   passed: {n_passed} " in captured.out
    assert "top codes" in captured.out and "FAILED_TO_READ_IMAGE" in captured.out
    assert "24 screened now, 0 from an earlier run" in captured.out
    # the same command again: nothing to do, and the summary still covers every image
    code = main(["screen", str(small_folder), "--out", str(out), "--workers", "2", "--no-progress"])
    again = capsys.readouterr()
    assert code == 1
    assert "24 of 24 image(s) already in" in again.err
    assert f"images: 24   passed: {n_passed} " in again.out and "0 screened now, 24 from an earlier run" in again.out
    assert len(read_rows(out)) == 24


def test_exit_0_when_every_image_passes(tmp_path: Path, samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ok"
    folder.mkdir()
    for i in range(2):
        shutil.copy(samples / "biden.jpg", folder / f"biden{i}.jpg")
    out = tmp_path / "r.jsonl"
    assert main(["screen", str(folder / "*.jpg"), "--out", str(out), "--policy", "progeny_document",
                 "--workers", "1", "--no-progress"]) == 0
    assert "passed: 2 (100.0%)" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, small_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["screen", str(tmp_path / "missing"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["screen", str(small_folder), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert main(["screen", str(small_folder), "--out", str(tmp_path / "r.csv"), "--policy", "nope"]) == 2
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "a.txt").write_text("text")
    assert main(["screen", str(empty), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no image files found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["screen", str(small_folder), "--out", str(tmp_path / "r.csv"), "--workers", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["screen", str(small_folder)])  # --out is required
    with pytest.raises(SystemExit):  # a negative count would drop codes from the end of the summary
        main(["screen", str(small_folder), "--out", str(tmp_path / "r.csv"), "--top", "-1"])
    # missing/../r.csv: "missing" would be created only to step back out of it
    assert main(["screen", str(small_folder), "--out", str(tmp_path / "missing" / ".." / "r.csv")]) == 2
    assert "'..' after a missing folder is ambiguous" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_a_folder_that_cannot_be_listed_stops_before_any_work(tmp_path: Path, small_folder: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    locked = next(str(p) for p in sorted(small_folder.rglob("*")) if p.is_dir())
    real_scandir = os.scandir

    def scandir(path: str = ".") -> object:  # root ignores permissions: stand in for chmod 000
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "r.csv"
    assert main(["screen", str(small_folder), "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"preflight: cannot list the folder {locked}: Permission denied\n"
    assert not out.exists()


def _start(args: list[str]) -> subprocess.Popen[str]:
    # a session of its own, like a terminal's foreground job: a signal can go to the whole group
    return subprocess.Popen([sys.executable, "-m", "preflight", "screen", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no {n} rows in {path} after {timeout} s")


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path: Path, dataset: Path, dataset_paths: list[str]) -> None:
    out = tmp_path / "results.parquet"
    proc = _start([str(dataset), "--out", str(out), "--workers", "2"])
    _wait_for_lines(journal_path(out), 20, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the parent and its workers get it
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr  # workers ignore SIGINT; the parent stops cleanly
    assert "run the same command again to resume" in stderr and "screening" in stderr  # progress bar
    assert out.exists() and not journal_path(out).exists()  # the journal was folded into the Parquet file
    done = [r["source"] for r in read_rows(out)]
    assert 20 <= len(done) < len(dataset_paths) and len(set(done)) == len(done)

    proc = _start([str(dataset), "--out", str(out), "--workers", "2", "--no-progress"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr  # the dataset has failures
    assert f"{len(done)} of {len(dataset_paths)} image(s) already in" in stderr
    assert f"images: {len(dataset_paths)} " in stdout
    assert f"{len(dataset_paths) - len(done)} screened now, {len(done)} from an earlier run" in stdout
    final = [r["source"] for r in read_rows(out)]
    assert sorted(final) == sorted(dataset_paths) and final[: len(done)] == done


def test_a_killed_run_loses_nothing_written(tmp_path: Path, dataset: Path, dataset_paths: list[str]) -> None:
    out = tmp_path / "results.parquet"
    proc = _start([str(dataset), "--out", str(out), "--workers", "2", "--no-progress"])
    _wait_for_lines(journal_path(out), 20, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.communicate(timeout=60)
    assert not out.exists() and journal_path(out).exists()
    done = [r["source"] for r in read_rows(out)]  # read from the journal
    assert len(done) >= 20

    proc = _start([str(dataset), "--out", str(out), "--workers", "2", "--no-progress"])
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    assert f"{len(done)} of {len(dataset_paths)} image(s) already in" in stderr
    assert not journal_path(out).exists()
    assert sorted(r["source"] for r in read_rows(out)) == sorted(dataset_paths)


def test_resumed_summary_counts_names_that_are_not_utf8(tmp_path: Path, samples: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The summary of a resumed run counts every image, also one whose name is written escaped."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(samples / "biden.jpg", folder / os.fsdecode(b"caf\xe9.jpg"))
    shutil.copy(samples / "biden.jpg", folder / "plain.jpg")
    out = tmp_path / "results.csv"
    command = ["screen", str(folder), "--out", str(out), "--workers", "1", "--no-progress",
               "--policy", "progeny_document"]
    assert main(command) == 0
    assert "images: 2 " in capsys.readouterr().out
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "(0 screened now, 2 from an earlier run)" in printed and "images: 2 " in printed
