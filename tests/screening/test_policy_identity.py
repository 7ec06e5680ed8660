"""A results file is resumed only with the policy it was written with: its name *and* its values."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preflight import Policy, screen
from preflight.cli import main
from preflight.errors import OutputFileError
from preflight.table import done_sources, policy_fingerprint, policy_label, read_rows, write_table

FORMATS = [".csv", ".jsonl", ".parquet"]
DOCUMENT = Policy.progeny_document()  # no face model: quick


@pytest.fixture()
def photos(tmp_path: Path, samples: Path) -> list[str]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("biden.jpg", "obama.jpg", "obama2.jpg"):
        shutil.copy(samples / name, folder / name)
    return [str(folder / name) for name in ("biden.jpg", "obama.jpg", "obama2.jpg")]


def test_the_label_is_the_preset_name_or_the_name_and_a_fingerprint(tmp_path: Path) -> None:
    assert policy_label(Policy()) == "progeny_selfie"
    assert policy_label(Policy.progeny_document()) == "progeny_document"
    assert policy_label(Policy(min_face_size_px=224)) == "progeny_selfie"  # 224 == 224.0: the same policy
    loose = tmp_path / "loose.toml"
    loose.write_text("min_face_size_px = 100\nmin_eye_distance_px = 20\n")  # inherits the name
    label = policy_label(Policy.from_toml(loose))
    assert re.fullmatch(r"progeny_selfie#[0-9a-f]{8}", label)
    assert label != policy_label(dataclasses.replace(Policy(), min_face_size_px=101))
    assert re.fullmatch(r"strict#[0-9a-f]{8}", policy_label(Policy(name="strict")))
    same = tmp_path / "same.toml"
    same.write_text('base = "progeny_document"\nmin_jpeg_quality = 70\n')  # restates the preset's value
    assert policy_label(Policy.from_toml(same)) == "progeny_document"
    # stable across processes (no hash randomisation): a rerun tomorrow matches today's file
    code = ("from preflight import Policy; from preflight.table import policy_label; "
            f"print(policy_label(Policy.from_toml({str(loose)!r})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert other.stdout.strip() == label


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_same_name_with_other_values_is_refused(tmp_path: Path, photos: list[str], suffix: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"results{suffix}"
    base = ["screen", *photos[:2], "--out", str(out), "--workers", "1", "--no-progress"]
    main([*base, "--policy", "progeny_document"])
    assert {r["policy"] for r in read_rows(out)} == {"progeny_document"}  # a preset: its name, as before
    loose = tmp_path / "loose.toml"
    loose.write_text('base = "progeny_document"\nmin_jpeg_quality = 10\nmax_file_bytes = 9000000\n')
    capsys.readouterr()
    before = out.read_bytes()
    command = ["screen", *photos, "--out", str(out), "--workers", "1", "--no-progress", "--policy", str(loose)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"preflight: {out} holds results of policy progeny_document,")
    assert "--restart" in err and "other settings" in err
    assert out.read_bytes() == before  # not a row added
    with pytest.raises(OutputFileError, match="other settings"):
        screen(photos, policy=Policy.from_toml(loose), out=out, progress=False)
    # the preset itself resumes, also given as a file that restates its values
    same = tmp_path / "same.toml"
    same.write_text('base = "progeny_document"\nmin_jpeg_quality = 70\n')
    assert main([*base[:1], *photos, *base[3:], "--policy", str(same)]) == 0
    assert "1 screened now, 2 from an earlier run" in capsys.readouterr().out
    # --restart replaces the file: now it holds the loose policy, under its label
    assert main([*command, "--restart"]) == 0
    label = policy_label(Policy.from_toml(loose))
    assert {r["policy"] for r in read_rows(out)} == {label} and set(done_sources(out).values()) == {label}
    assert main(command) == 0  # and resumes with it
    assert "0 screened now, 3 from an earlier run" in capsys.readouterr().out
    # the other way round: the preset does not resume the loose policy's file
    assert main([*base, "--policy", "progeny_document"]) == 2
    assert "the same name with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_policy_of_its_own_resumes_with_the_same_values_only(tmp_path: Path, photos: list[str], suffix: str) -> None:
    strict = dataclasses.replace(DOCUMENT, name="strict", min_jpeg_quality=80)
    out = tmp_path / f"results{suffix}"
    with screen(photos[:2], policy=strict, out=out, workers=1, progress=False) as run:
        reports = list(run)
    label = f"strict#{policy_fingerprint(strict)}"
    assert [r.policy for r in reports] == [label, label]  # the reports say what the rows say
    assert [r["policy"] for r in read_rows(out)] == [label, label]
    with screen(photos, policy=dataclasses.replace(strict), out=out, workers=1, progress=False) as run:
        assert len(list(run)) == 1 and run.skipped == 2
    with pytest.raises(OutputFileError, match=r"holds results of policy strict#[0-9a-f]{8}, not strict#"):
        screen(photos, policy=dataclasses.replace(strict, min_jpeg_quality=81), out=out, progress=False)


def test_a_bare_name_that_is_no_preset_is_not_taken_on_trust(tmp_path: Path) -> None:
    """Rows of an older version say ``strict`` without a fingerprint: no telling which values that was."""
    out = tmp_path / "old.csv"
    row = {"source": "a.jpg", "passed": True, "policy": "strict", "issues": "", "not_checked": ""}
    write_table([row], out)
    with pytest.raises(OutputFileError, match="older version") as exc:
        screen(["a.jpg", "b.jpg"], policy=dataclasses.replace(DOCUMENT, name="strict"), out=out, progress=False)
    assert "--restart" in str(exc.value)
    assert screen(["a.jpg"], policy=DOCUMENT, out=out, resume=False).total == 1
