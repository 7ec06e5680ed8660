from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preflight import codes
from preflight.report import Issue, Measurements, Report
from preflight.table import (
    OutputFileError,
    column_names,
    done_sources,
    journal_path,
    open_writer,
    read_rows,
    read_table,
    report_row,
    to_records,
    to_table,
    write_table,
)

FORMATS = [".parquet", ".csv", ".jsonl"]


def _reports() -> list[Report]:
    """Reports with awkward values: floats that need all their digits, None, numpy scalars, text."""
    return [
        Report(
            issues=(
                Issue.make(codes.FACE_TOO_SMALL, "face is 0.30000000000000004 px, below 224", measured=0.3, limit=224),
                Issue.make(codes.EXIF_ROTATED, "rotated; by EXIF\nsecond line"),
            ),
            measurements=Measurements(
                format="JPEG", file_bytes=123_456, width=640, height=760, mode="RGB", face_count=np.int64(1),
                face_box=(10, 20, 300, 310), face_size_px=0.1 + 0.2, eye_distance_px=1 / 3,
                yaw_deg=-0.0, pitch_deg=np.float32(1.5), sharpness=1e-300, brightness=123456789.123456789,
            ),
            not_checked={"GLARE": "documents only"},
            source="dir/a b,c\"d.jpg",
            policy="progeny_selfie",
            elapsed_ms=12.5,
        ),
        Report(
            issues=(Issue.make(codes.FAILED_TO_READ_IMAGE, "failed to read image: the file is empty"),),
            measurements=Measurements(file_bytes=0),
            source="dir/empty.jpg",
        ),
        Report(issues=(), measurements=Measurements(format="PNG", width=500, height=500, face_box=None),
               source="dir/ünïcödé.png"),
    ]


def test_columns_cover_measurements_and_codes() -> None:
    names = column_names()
    assert names[:3] == ["source", "passed", "policy"]
    for field in Measurements.field_names():
        if field == "face_box":
            assert field not in names
            assert [f"face_box_{s}" for s in "xywh"] == [n for n in names if n.startswith("face_box_")]
        else:
            assert field in names
    assert [n for n in names if n.startswith("code_")] == [f"code_{c}" for c in codes.ALL_CODES]
    assert "issues" in names and "elapsed_ms" not in names
    assert len(names) == len(set(names))


def test_row_values() -> None:
    row = report_row(_reports()[0])
    assert list(row) == column_names()
    assert row["source"] == "dir/a b,c\"d.jpg" and row["passed"] is False and row["policy"] == "progeny_selfie"
    assert (row["face_box_x"], row["face_box_y"], row["face_box_w"], row["face_box_h"]) == (10, 20, 300, 310)
    assert row["face_size_px"] == 0.1 + 0.2 and row["eye_distance_px"] == 1 / 3
    assert type(row["face_count"]) is int and type(row["pitch_deg"]) is float and row["pitch_deg"] == 1.5
    assert row["code_FACE_TOO_SMALL"] is True and row["code_EXIF_ROTATED"] is True
    assert row["code_FACE_NOT_FOUND"] is False
    assert row["n_errors"] == 1 and row["n_warnings"] == 1
    assert row["issues"].startswith("FACE_TOO_SMALL: face is") and "EXIF_ROTATED: rotated" in row["issues"]
    assert row["not_checked"] == "GLARE: documents only"
    empty = report_row(_reports()[2])
    assert empty["passed"] is True and empty["issues"] == "" and empty["face_box_x"] is None


def test_to_table_dtypes_and_order() -> None:
    df = to_table(_reports())
    assert list(df.columns) == column_names()
    assert list(df["source"]) == [r.source for r in _reports()]
    assert df["face_size_px"].dtype == np.float64 and np.isnan(df["face_size_px"].iloc[1])
    assert str(df["width"].dtype) == "Int64" and df["width"].isna().tolist() == [False, True, False]
    assert str(df["source"].dtype) == "string"
    assert df["passed"].dtype == bool and df["code_FAILED_TO_READ_IMAGE"].tolist() == [False, True, False]
    empty = to_table([])
    assert list(empty.columns) == column_names() and len(empty) == 0
    assert (empty.dtypes == df.dtypes).all()


def test_rows_are_accepted_as_input() -> None:
    rows = to_records(_reports())
    pd.testing.assert_frame_equal(to_table(rows), to_table(_reports()), check_exact=True)


def test_list_of_dicts_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    table = to_table(_reports())
    assert isinstance(table, list) and table == to_records(_reports())
    assert table[0]["face_box_w"] == 300


@pytest.mark.parametrize("suffix", FORMATS)
def test_files_round_trip_exactly(tmp_path: Path, suffix: str) -> None:
    path = write_table(_reports(), tmp_path / f"results{suffix}")
    assert path.exists() and not journal_path(path).exists()
    pd.testing.assert_frame_equal(read_table(path), to_table(_reports()), check_exact=True)
    assert read_rows(path) == to_records(_reports())
    assert set(done_sources(path)) == {r.source for r in _reports()}


def test_csv_is_plain_and_one_line_per_row(tmp_path: Path) -> None:
    path = write_table(_reports(), tmp_path / "r.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 3  # the newline inside an issue message is flattened
    assert lines[0].split(",")[:3] == ["source", "passed", "policy"]
    assert "0.30000000000000004" in lines[1] and "1e-300" in lines[1]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_append_after_a_cut_off_write(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    reports = _reports()
    write_table(reports[:2], path)
    with path.open("a", encoding="utf-8") as fh:  # what a run killed in the middle of a write leaves
        fh.write('{"source": "dir/half' if suffix == ".jsonl" else '"dir/half.jpg",False,progeny_sel')
    assert set(done_sources(path)) == {reports[0].source, reports[1].source}
    writer = open_writer(path, append=True)
    writer.write(to_records(reports[2:]))
    writer.close()
    assert read_rows(path) == to_records(reports)
    if suffix == ".jsonl":
        assert all(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("cut", [1, 2, 10])  # the newline only, the CR LF, the end of the last cell
def test_a_csv_row_cut_after_its_cells_is_not_done(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "r.csv"
    reports = _reports()
    write_table(reports, path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # a run killed while writing the last row's line ending or tail
    assert set(done_sources(path)) == {reports[0].source, reports[1].source}  # screened again next run
    writer = open_writer(path, append=True)
    writer.write(to_records(reports[2:]))
    writer.close()
    assert read_rows(path) == to_records(reports)


def test_parquet_journal_survives_a_killed_run(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    reports = _reports()
    write_table(reports[:1], path)
    writer = open_writer(path, append=True)
    writer.write(to_records(reports[1:2]))
    # no close(): as if the process had been killed. The journal holds the row; the file does not.
    assert journal_path(path).exists()
    assert read_rows(path) == to_records(reports[:2])
    assert set(done_sources(path)) == {reports[0].source, reports[1].source}
    writer2 = open_writer(path, append=True)  # the next run
    writer2.write(to_records(reports[2:]))
    writer2.close()
    assert not journal_path(path).exists()
    import pyarrow.parquet as pq

    assert pq.read_table(path).num_rows == 3
    assert read_rows(path) == to_records(reports)


def test_parquet_journal_of_a_first_run_that_was_killed(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    writer = open_writer(path, append=True)
    writer.write(to_records(_reports()[:2]))  # killed before close(): no Parquet file at all yet
    assert not path.exists()
    assert set(done_sources(path)) == {r.source for r in _reports()[:2]}
    assert read_rows(path) == to_records(_reports()[:2])


def test_restart_replaces_the_file(tmp_path: Path) -> None:
    for suffix in FORMATS:
        path = write_table(_reports(), tmp_path / f"r{suffix}")
        writer = open_writer(path, append=False)
        writer.write(to_records(_reports()[2:]))
        writer.close()
        assert read_rows(path) == to_records(_reports()[2:]), suffix


def test_bad_outputs(tmp_path: Path) -> None:
    with pytest.raises(OutputFileError, match=r"\.parquet, \.csv or \.jsonl"):
        open_writer(tmp_path / "r.xlsx")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(OutputFileError, match="other columns"):
        open_writer(other, append=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(OutputFileError, match="other columns"):
        open_writer(tmp_path / "other.parquet", append=True)


def test_measurement_fields_added_later_get_columns() -> None:
    """The columns follow Measurements: a new field would get its own column without code changes."""
    hinted = {f.name for f in dataclasses.fields(Measurements)}
    assert hinted - {"face_box"} <= set(column_names())
