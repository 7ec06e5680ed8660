"""preflight fix / Conformed.save: the output's extension must say what the bytes are.

A name that contradicts the written format is refused with one ``preflight:`` line and exit 2, and
nothing is written: before any work when the input's format already rules the name out (a WebP or
a JPEG is always repaired as a JPEG), after the repair when only the repair can tell (a PNG stays PNG
unless it needs new pixels). See also test_conform.py for the re-encoded PNG and atomic writes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import preflight
from preflight.cli import main
from preflight.conform import conform, output_formats, suffix_conflict

from ._cli import DOC, ROOT, cli_env, must_not_run
from ._cli import one_error_line as _one_error_line


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "preflight", *args], cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def photos(tmp_path: Path, samples: Path) -> dict[str, Path]:
    """The same passing photo (1280x720) as JPEG, WebP and PNG, in a folder of their own."""
    folder = tmp_path / "in"
    folder.mkdir()
    face = Image.open(samples / "obama-720p.jpg").convert("RGB")
    paths = {"JPEG": folder / "photo.jpg", "WEBP": folder / "photo.webp", "PNG": folder / "photo.png"}
    face.save(paths["JPEG"], "JPEG", quality=95)
    face.save(paths["WEBP"], "WEBP", quality=95)
    face.save(paths["PNG"], "PNG")
    return paths


def _written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("WEBP", "out.png", "out.png names a .png file, but the repaired image will be JPEG (from a WEBP photo); "
                            "name it .jpg"),
        ("WEBP", "out.webp", "will be JPEG (from a WEBP photo); name it .jpg"),
        ("JPEG", "OUT.PNG", "OUT.PNG names a .png file, but the repaired image will be JPEG (from a JPEG photo)"),
        ("JPEG", "out.Tiff", "names a .tiff file"),
        ("PNG", "out.webp", "will be JPEG or PNG (from a PNG photo); name it .jpg or .png"),
    ],
)
def test_fix_refuses_a_name_the_input_rules_out_before_any_work(
    photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    source: str, name: str, expected: str,
) -> None:
    monkeypatch.setattr("preflight.commands.fix.conform", must_not_run("conform"))
    out = tmp_path / name
    assert main(["fix", str(photos[source]), "-o", str(out)]) == 2  # the default policy: still no work
    stdout, err = capsys.readouterr()
    _one_error_line(err, expected)
    assert stdout == ""
    assert _written(tmp_path) == ["in"]


def test_fix_cli_webp_to_png_is_refused_in_one_line_and_writes_nothing(photos: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """The real command line, in a process of its own: the example from the bug report."""
    result = _run_cli("fix", str(photos["WEBP"]), "-o", str(tmp_path / "out.png"))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    _one_error_line(result.stderr, "out.png names a .png file", "JPEG", "name it .jpg")
    assert _written(tmp_path) == ["in"]  # no out.png, no temporary file

    result = _run_cli("fix", str(photos["WEBP"]), "-o", str(tmp_path / "out.JPG"), *DOC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"written to {tmp_path / 'out.JPG'}" in result.stdout
    assert _written(tmp_path) == ["in", "out.JPG"]
    with Image.open(tmp_path / "out.JPG") as written:
        assert written.format == "JPEG"


def test_fix_cli_re_encoded_png_with_a_png_name_is_refused_after_the_work(tmp_path: Path, samples: Path) -> None:
    """Only the repair tells whether a PNG stays PNG: refused then, with the same one line, nothing written."""
    folder = tmp_path / "in"
    folder.mkdir()
    face = Image.open(samples / "obama-720p.jpg").convert("RGB")
    face.rotate(90, expand=True).resize((1440, 2560)).save(folder / "tall.png", "PNG")  # taller than 1080: resized
    result = _run_cli("fix", str(folder / "tall.png"), "-o", str(tmp_path / "out.png"), "--json", *DOC)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no JSON about a file that was not written
    _one_error_line(result.stderr, "out.png names a .png file, but the repaired image is JPEG "
                                   "(the PNG photo had to be re-encoded); name it .jpg")
    assert _written(tmp_path) == ["in"]


def test_fix_keeps_a_png_under_a_png_name_and_accepts_a_name_without_extension(
    photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["fix", str(photos["PNG"]), "-o", str(tmp_path / "kept.PNG"), *DOC]) == 0
    assert main(["fix", str(photos["WEBP"]), "-o", str(tmp_path / "upload"), *DOC]) == 0
    assert main(["fix", str(photos["JPEG"]), "-o", str(tmp_path / "notes.txt"), *DOC]) == 0  # not an image name
    capsys.readouterr()
    with Image.open(tmp_path / "kept.PNG") as kept, Image.open(tmp_path / "upload") as upload:
        assert kept.format == "PNG" and upload.format == "JPEG"
    # a PNG that needs no new pixels under a .jpg name: refused after the work, nothing written
    assert main(["fix", str(photos["PNG"]), "-o", str(tmp_path / "out.jpg"), *DOC]) == 2
    _one_error_line(capsys.readouterr().err, "out.jpg names a .jpg file, but the repaired image is PNG; name it .png")
    assert _written(tmp_path) == ["in", "kept.PNG", "notes.txt", "upload"]


# -- the library ------------------------------------------------------------------------------------

def test_save_raises_output_file_error_on_a_contradicting_extension(photos: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    policy = preflight.Policy.named("progeny_document")
    fixed = conform(photos["JPEG"], policy)
    assert fixed.format == "JPEG" and fixed.suffix == ".jpg" and fixed.data is not None
    for name in ("out.png", "OUT.PNG", "out.webp", "out.heic", "out.tif"):
        with pytest.raises(preflight.OutputFileError, match=r"names a \.\w+ file, but the repaired image is JPEG; "
                                                            r"name it \.jpg") as exc:
            fixed.save(tmp_path / name)
        assert isinstance(exc.value, preflight.PreflightError) and isinstance(exc.value, ValueError)
        assert "re-encoded" not in str(exc.value)  # a JPEG stays a JPEG: only its metadata went
    assert _written(tmp_path) == ["in"]
    for name in ("a.jpg", "b.JPEG", "c.jpe", "d.jfif", "e", "f.bin"):
        fixed.save(str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == fixed.data
    converted = conform(photos["WEBP"], policy)
    assert converted.format == "JPEG" and converted.changes[0] == "converted WEBP to JPEG"
    with pytest.raises(preflight.OutputFileError, match=r"is JPEG \(the WEBP photo had to be re-encoded\)"):
        converted.save(tmp_path / "out.webp")
    assert not (tmp_path / "out.webp").exists()


def test_output_formats_and_suffix_conflict() -> None:
    default = preflight.Policy()
    assert output_formats("JPEG", default) == ("JPEG",)
    assert output_formats("WEBP", default) == ("JPEG",)
    assert output_formats("HEIF", default) == ("JPEG",)
    assert output_formats("PNG", default) == ("JPEG", "PNG")
    assert output_formats(None, default) == ("JPEG", "PNG")  # unknown input: whatever is accepted
    assert output_formats("PNG", preflight.Policy(allowed_formats=("JPEG",))) == ("JPEG",)
    webp_ok = preflight.Policy(allowed_formats=("JPEG", "PNG", "WEBP"))
    assert output_formats("WEBP", webp_ok) == ("JPEG", "WEBP")  # --keep-metadata may keep a WebP as it is
    # a format other than JPEG/PNG is judged like any other: its own extension fits, JPEG's does not
    assert suffix_conflict("x.webp", "WEBP") is None
    assert suffix_conflict("x.webp", None, possible=("JPEG", "WEBP")) is None
    assert suffix_conflict("x.jpg", "WEBP") == "x.jpg names a .jpg file, but the repaired image is WEBP; name it .webp"
    assert suffix_conflict(Path("dir.png") / "x", "JPEG") is None  # the folder's name does not count
    assert suffix_conflict("x.", "JPEG") is None and suffix_conflict(".png", "JPEG") is None  # no extension
