"""The command line's error paths: one ``preflight: ...`` line on stderr and exit 2, never a traceback
(exit 1 means "an image failed"); and ``check`` goes on past a file it cannot check."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight.cli import main
from preflight.conform import Conformed
from preflight.errors import ModelError
from preflight.gate import Gate
from preflight.table import journal_path

from ._cli import DOC, ROOT
from ._cli import cli_env as _env
from ._cli import must_not_run as _must_not_run
from ._cli import one_error_line as _one_error_line


@pytest.fixture()
def photo(tmp_path: Path, samples: Path) -> Path:
    """A photo that passes the document policy."""
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    shutil.copy(samples / "biden.jpg", path)
    return path


def _honouring_permissions() -> list[str] | None:
    """A command prefix under which file permissions apply (the tests usually run as root, which
    ignores them: setpriv drops that override), or None where that cannot be arranged."""
    setpriv = shutil.which("setpriv")
    candidates: list[list[str]] = [[]]
    if setpriv is not None:
        candidates.append([setpriv, "--bounding-set=-dac_override,-dac_read_search",
                           "--inh-caps=-dac_override,-dac_read_search", "--"])
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_text("x")
        locked.chmod(0)
        for prefix in candidates:
            try:
                works = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
                denied = subprocess.run([*prefix, "test", "-r", str(locked)], capture_output=True,
                                        timeout=30).returncode == 1
            except OSError:
                continue
            if works and denied:
                return prefix
    return None


# -- --policy files ------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"\xff\xfe\x00"), "is not UTF-8 text"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_unreadable_policy_file_exits_2(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                        make: Callable[[Path], Any], message: str) -> None:
    policy = tmp_path / "policy.toml"
    make(policy)
    for command in (["check", str(photo)], ["fix", str(photo), "-o", str(tmp_path / "o.jpg")],
                    ["annotate", str(photo), "-o", str(tmp_path / "o.png")],
                    ["screen", str(photo), "--out", str(tmp_path / "r.csv")]):
        assert main([*command, "--policy", str(policy)]) == 2, command
        captured = capsys.readouterr()
        assert captured.out == ""
        _one_error_line(captured.err, "policy file", message)


# -- fix -o / annotate -o ------------------------------------------------------------------------

def test_fix_refuses_an_unwritable_output_before_any_work(tmp_path: Path, photo: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preflight.commands.fix.conform", _must_not_run("conform"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (tmp_path / "no" / "such" / "dir" / "out.jpg", "does not exist"),
        (a_file / "out.jpg", "is not a folder"),
        (tmp_path, "it is a folder"),
    ]
    for output, message in cases:
        assert main(["fix", str(photo), "-o", str(output), *DOC]) == 2
        _one_error_line(capsys.readouterr().err, f"cannot write {output}", message)
    assert not (tmp_path / "no").exists()


def test_fix_write_error_exits_2(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: Any, path: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Conformed, "save", disk_full)
    assert main(["fix", str(photo), "-o", str(tmp_path / "out.jpg"), *DOC]) == 2
    _one_error_line(capsys.readouterr().err, "cannot write", "No space left on device")


@pytest.mark.parametrize(("name", "message"), [
    ("out.xyz", "unsupported extension '.xyz'"),
    ("out", "no file extension"),
    ("out.txt", "unsupported extension '.txt'"),
])
def test_annotate_refuses_an_unknown_extension_before_any_work(tmp_path: Path, photo: Path, name: str,
                                                               message: str, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preflight.commands.annotate.Gate", _must_not_run("the gate"))
    assert main(["annotate", str(photo), "-o", str(tmp_path / name), *DOC]) == 2
    _one_error_line(capsys.readouterr().err, message, "use .png, .jpg, .jpeg, .webp, .bmp, .gif, .tif, .tiff")
    assert not (tmp_path / name).exists()


def test_annotate_refuses_a_missing_folder_before_any_work(tmp_path: Path, photo: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preflight.commands.annotate.Gate", _must_not_run("the gate"))
    output = tmp_path / "no" / "such" / "dir" / "x.png"
    assert main(["annotate", str(photo), "-o", str(output), *DOC]) == 2
    _one_error_line(capsys.readouterr().err, f"cannot write {output}", "does not exist")


def test_annotate_writes_the_format_of_its_extension(tmp_path: Path, photo: Path) -> None:
    from PIL import Image

    for name, fmt in (("a.PNG", "PNG"), ("a.jpeg", "JPEG")):
        assert main(["annotate", str(photo), "-o", str(tmp_path / name), *DOC]) == 0
        with Image.open(tmp_path / name) as picture:
            assert picture.format == fmt


def test_annotate_write_error_exits_2(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("PIL.Image.Image.save", disk_full)
    assert main(["annotate", str(photo), "-o", str(tmp_path / "a.png"), *DOC]) == 2
    _one_error_line(capsys.readouterr().err, "cannot write", "No space left on device")


def test_annotate_and_fix_leave_no_partial_file(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while the output is written: exit 2, the previous output intact, no temp file."""
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out"
    out.mkdir()
    for command, name in ((["annotate"], "a.png"), (["fix"], "f.jpg")):
        (out / name).write_bytes(b"previous")
        monkeypatch.setattr("os.fsync", disk_full)
        assert main([*command, str(photo), "-o", str(out / name), *DOC]) == 2
        monkeypatch.undo()
        _one_error_line(capsys.readouterr().err, "cannot write", "No space left on device")
        assert (out / name).read_bytes() == b"previous"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "f.jpg"]


@pytest.mark.parametrize("command", ["annotate", "fix"])
def test_annotate_and_fix_refuse_to_overwrite_their_input(tmp_path: Path, photo: Path, command: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "in.jpg"
    shutil.copy(photo, original)
    (tmp_path / "link.jpg").symlink_to(original)
    monkeypatch.chdir(tmp_path)
    work = {"annotate": "preflight.commands.annotate.Gate", "fix": "preflight.commands.fix.conform"}[command]
    monkeypatch.setattr(work, _must_not_run(work))
    for output in (str(original), "./in.jpg", "link.jpg"):  # the same file, however it is named
        assert main([command, "in.jpg", "-o", output, *DOC]) == 2
        _one_error_line(capsys.readouterr().err, f"cannot write {output}: it is the input photo")
    assert original.read_bytes() == photo.read_bytes()


def test_an_output_that_is_a_symlink_is_written_through(tmp_path: Path, photo: Path) -> None:
    from PIL import Image

    for command, name in ((["annotate"], "a.png"), (["fix"], "f.jpg")):
        target = tmp_path / f"target-{name}"
        target.write_bytes(b"previous")
        link = tmp_path / name
        link.symlink_to(target)
        assert main([*command, str(photo), "-o", str(link), *DOC]) == 0
        assert link.is_symlink() and os.readlink(link) == str(target)  # the link is kept...
        with Image.open(target) as picture:  # ... and what it points to replaced
            assert picture.format == ("PNG" if name.endswith(".png") else "JPEG")


def test_an_output_link_that_cannot_be_written_through_is_refused_before_any_work(
        tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preflight.commands.fix.conform", _must_not_run("conform"))
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere" / "x.jpg")
    for name, message in (("a.jpg", "it is a symlink loop"), ("dangling.jpg", "in a folder that does not exist")):
        assert main(["fix", str(photo), "-o", str(tmp_path / name), *DOC]) == 2
        _one_error_line(capsys.readouterr().err, f"cannot write {tmp_path / name}: ", message)
        assert (tmp_path / name).is_symlink()  # left alone (it used to be replaced by a file)


# -- screen --out --------------------------------------------------------------------------------

def test_screen_corrupt_output_exits_2_and_is_left_alone(tmp_path: Path, photo: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = {"r.parquet": b"PAR1garbage", "r.csv": b"\xff\xfe garbage\n", "r.jsonl": b"\xc7\xff\x00\n"}
    for name, data in corrupt.items():
        out = tmp_path / name
        out.write_bytes(data)
        args = ["screen", str(photo.parent), "--out", str(out), "--workers", "1", "--no-progress", *DOC]
        assert main(args) == 2, name
        captured = capsys.readouterr()
        _one_error_line(captured.err, f"cannot resume from {out}", "--restart")
        assert out.read_bytes() == data and not journal_path(out).exists()
        # --restart replaces it
        assert main([*args, "--restart"]) == 0, name
        assert "1 screened now" in capsys.readouterr().out


def test_screen_refuses_an_unusable_output_before_any_work(tmp_path: Path, photo: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preflight.commands.screen.screen", _must_not_run("the screening"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder = tmp_path / "results.csv"
    folder.mkdir()
    for out, message in ((a_file / "s.jsonl", "is not a folder"), (folder, "it is a folder"),
                         (tmp_path / "s.xlsx", "use a .parquet, .csv or .jsonl file")):
        assert main(["screen", str(photo.parent), "--out", str(out), "--workers", "1", *DOC]) == 2
        _one_error_line(capsys.readouterr().err, message)


def test_screen_creates_missing_output_folders(tmp_path: Path, photo: Path) -> None:
    # kept on purpose: --out results/2024/run.csv works without a mkdir first
    out = tmp_path / "new" / "sub" / "s.csv"
    assert main(["screen", str(photo.parent), "--out", str(out), "--workers", "1", "--no-progress", *DOC]) == 0
    assert out.is_file()


def test_screen_write_error_during_the_run_exits_2(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: Any, rows: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("preflight.table.JsonlWriter.write", disk_full)
    out = tmp_path / "s.jsonl"
    assert main(["screen", str(photo.parent), "--out", str(out), "--workers", "1", "--no-progress", *DOC]) == 2
    _one_error_line(capsys.readouterr().err, f"cannot write {out}", "No space left on device")


def test_screen_into_a_read_only_folder_exits_2(tmp_path: Path, photo: Path) -> None:
    prefix = _honouring_permissions()
    if prefix is None:
        pytest.skip("file permissions cannot be made to apply here (root without setpriv)")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    for out in (read_only / "s.jsonl", read_only / "sub" / "s.csv"):
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "preflight", "screen", str(photo.parent), "--out", str(out),
             "--workers", "1", "--no-progress", *DOC],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 2, result.stderr
        _one_error_line(result.stderr, f"cannot write {out}", "no permission")
    assert list(read_only.iterdir()) == []


# -- as the QA scripts ran them: a process, stderr read whole ------------------------------------

def test_error_paths_as_a_process(tmp_path: Path, photo: Path) -> None:
    bad_utf8 = tmp_path / "bad_utf8.toml"
    bad_utf8.write_bytes(b"\xff\xfe\x00")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1garbage")
    commands = [
        ["check", str(photo), "--policy", str(bad_utf8)],
        ["fix", str(photo), "-o", "/no/such/dir/out.jpg"],
        ["annotate", str(photo), "-o", str(tmp_path / "out.xyz")],
        ["screen", str(photo.parent), "--out", str(corrupt), "--workers", "1", "--no-progress"],
    ]
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "preflight", *command], cwd=ROOT, env=_env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        _one_error_line(result.stderr)


# -- check goes on past a file it cannot check ---------------------------------------------------

def _copies(photo: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = photo.parent / name
        shutil.copy(photo, path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("as_json", [False, True])
def test_check_reports_the_other_files_when_one_vanishes(photo: Path, as_json: bool,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first, gone, last = _copies(photo, "a.jpg", "b.jpg", "c.jpg")
    real_check = Gate.check

    def check_then_delete(self: Gate, source: Any, **kwargs: Any) -> Any:
        if Path(source) == first:
            gone.unlink()  # deleted while the first file is checked: the real loader raises for it
        return real_check(self, source, **kwargs)

    monkeypatch.setattr(Gate, "check", check_then_delete)
    code = main(["check", str(first), str(gone), str(last), *DOC, *(["--json"] if as_json else [])])
    captured = capsys.readouterr()
    assert code == 2  # a verdict is missing: more than "an image failed"
    _one_error_line(captured.err, f"preflight: {gone}: cannot check: no such file")
    if as_json:
        reports = [json.loads(line) for line in captured.out.splitlines()]
        assert [r["source"] for r in reports] == [str(first), str(last)]
        assert all(r["passed"] for r in reports)
    else:
        assert f"{first}: PASS" in captured.out and f"{last}: PASS" in captured.out
        assert str(gone) not in captured.out


def test_check_goes_on_after_an_os_error_and_a_failed_image_still_counts(photo: Path, samples: Path,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    broken, good = _copies(photo, "broken.jpg", "good.jpg")
    small = samples / "rocket.jpg"  # fails: RESOLUTION_TOO_LOW
    real_check = Gate.check

    def failing_read(self: Gate, source: Any, **kwargs: Any) -> Any:
        if Path(source) == broken:
            raise OSError(errno.EIO, "Input/output error", str(source))
        return real_check(self, source, **kwargs)

    monkeypatch.setattr(Gate, "check", failing_read)
    assert main(["check", str(broken), str(small), str(good), *DOC]) == 2
    captured = capsys.readouterr()
    _one_error_line(captured.err, f"{broken}: cannot check: Input/output error")
    assert "RESOLUTION_TOO_LOW" in captured.out and f"{good}: PASS" in captured.out
    # without the unreadable file the same run exits 1
    assert main(["check", str(small), str(good), *DOC]) == 1


def test_check_stops_once_when_the_model_cannot_load(photo: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_model(self: Gate, source: Any, **kwargs: Any) -> Any:
        raise ModelError("face model: wrong SHA-256")

    monkeypatch.setattr(Gate, "check", broken_model)
    files = [str(p) for p in _copies(photo, "a.jpg", "b.jpg")]
    assert main(["check", *files]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "wrong SHA-256")  # once, not once per file


def test_check_unreadable_files_as_the_qa_script(tmp_path: Path, photo: Path) -> None:
    """Mode 000 (with root's override dropped) and /proc/self/mem (EIO): the next file is still checked."""
    unreadable = tmp_path / "noperm.jpg"
    shutil.copy(photo, unreadable)
    unreadable.chmod(0)
    prefix = _honouring_permissions()
    targets = [str(unreadable)] if prefix is not None else []
    if os.path.isfile("/proc/self/mem"):
        targets.append("/proc/self/mem")
    if not targets:
        pytest.skip("no way to make an unreadable file here")
    for target in targets:
        result = subprocess.run([*(prefix or []), sys.executable, "-m", "preflight", "check", target, str(photo),
                                 *DOC],
                                cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        assert f"{photo}: PASS" in result.stdout, result.stdout
        assert target in result.stdout + result.stderr
        # the loader reports an unreadable file as a failed photo, naming the OS error
        assert result.returncode == 1
        assert "FAILED_TO_READ_IMAGE" in result.stdout


# -- check: a folder is not a file; - reads the photo from stdin ---------------------------------

@pytest.mark.parametrize("command", [
    ["check", "{d}"], ["fix", "{d}", "-o", "{d}/x.jpg"], ["annotate", "{d}", "-o", "{d}/x.png"],
    ["submit", "face_liveness", "--image", "{d}"],
])
def test_a_folder_as_the_photo_says_so_and_points_to_screen(photo: Path, command: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([part.format(d=photo.parent) for part in command] + DOC) == 2
    _one_error_line(capsys.readouterr().err, "is a folder", "preflight screen")
    assert sorted(p.name for p in photo.parent.iterdir()) == ["photo.jpg"]


def test_check_reads_a_photo_from_stdin(photo: Path) -> None:
    """``cat photo.jpg | preflight check -``, as a process (the real stdin), next to a named file."""
    for stdin, code, verdict in ((photo.read_bytes(), 0, "PASS"), (b"not a photo", 1, "FAILED_TO_READ_IMAGE")):
        result = subprocess.run([sys.executable, "-m", "preflight", "check", "--json", "-", str(photo), *DOC],
                                cwd=ROOT, env=_env(), input=stdin, capture_output=True, timeout=120)
        assert result.returncode == code, result.stderr
        first, second = (json.loads(line) for line in result.stdout.decode().splitlines())
        assert first["source"] == "<stdin>" and second["source"] == str(photo) and second["passed"]
        assert first["passed"] is (verdict == "PASS")
        assert verdict == "PASS" or verdict in first["issues"]["preflight"]
    result = subprocess.run([sys.executable, "-m", "preflight", "check", "-", "-", *DOC], cwd=ROOT, env=_env(),
                            input="", capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    _one_error_line(result.stderr, "only once")
