"""A ``.jsonl`` output that is not a results file is refused, as CSV and Parquet ones are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preflight.cli import main
from preflight.table import OutputFileError, open_writer, read_rows, write_table


@pytest.mark.parametrize("text, message", [
    ('{"event": "login", "user": 7}\n{"event": "logout"}\n', "has other columns than this version"),
    ('{"source": "a.jpg", "passed": true}\n', "has other columns than this version"),  # a few keys only
    ("just some notes\nnot json\n", "is not a results file"),
    ('["source", "passed"]\n', "is not a results file"),
])
def test_screen_refuses_to_append_to_another_jsonl_file(tmp_path: Path, samples: Path, text: str, message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "p.jpg"
    shutil.copy(samples / "biden.jpg", photo)
    out = tmp_path / "notes.jsonl"
    out.write_text(text)
    command = ["screen", str(photo), "--out", str(out), "--workers", "1", "--no-progress",
               "--policy", "progeny_document"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"preflight: {out} ") and message in err and err.count("\n") == 1
    assert out.read_text() == text  # left as it was
    with pytest.raises(OutputFileError, match=message):
        open_writer(out)
    assert main([*command, "--restart"]) == 0  # replacing it is the user's call
    assert [r["source"] for r in read_rows(out)] == [str(photo)]


def test_results_files_still_append(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    row = {"source": "a.jpg", "passed": True, "policy": "progeny_selfie", "issues": "", "not_checked": ""}
    write_table([row], out)
    writer = open_writer(out)
    writer.write(read_rows(out))
    writer.close()
    assert [r["source"] for r in read_rows(out)] == ["a.jpg", "a.jpg"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    open_writer(empty).close()  # an empty file is no one's
