"""Flat tables of reports: one row per image, a column per measurement and per code.

:func:`to_table` turns reports into a pandas ``DataFrame`` (a list of dicts when pandas is not
installed). The columns, always the same and in the same order (see :func:`columns`):

- ``source``, ``passed``, ``policy`` (:func:`policy_label`: the preset's name, or the policy's name and
  a fingerprint of its values);
- every :class:`~preflight.report.Measurements` field, ``face_box`` split into ``face_box_x``,
  ``face_box_y``, ``face_box_w`` and ``face_box_h``;
- ``code_<CODE>``: one boolean per code in :data:`preflight.codes.ALL_CODES` (True when the image
  has that issue, whatever its severity);
- ``n_errors``, ``n_warnings``; ``issues`` (``"CODE: message; CODE: message"``, empty when none) and
  ``not_checked`` (``"rule: reason; ..."``).

``elapsed_ms`` is left out on purpose: the table depends only on the image bytes and the policy.

Files: ``.parquet`` (pyarrow), ``.csv`` (the standard library) and ``.jsonl`` (one JSON object a
line). :func:`open_writer` appends rows as they come (the screening run writes incrementally, so an
interrupted run loses nothing already screened); :func:`read_rows` / :func:`read_table` read them
back with the same types. Parquet files cannot be appended to, so rows first go to a journal beside
the file (``results.parquet.partial.jsonl``); closing the writer rewrites the Parquet file with the
old rows plus the journal (atomically, through a temporary file) and deletes the journal. A journal
left by a killed run is picked up by the next run and by :func:`read_rows`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import math
import os
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .codes import ALL_CODES
from .errors import OutputFileError as OutputFileError  # re-exported: it was defined here first
from .policy import Policy
from .report import Measurements, Report, printable

Kind = Literal["str", "int", "float", "bool"]
Row = dict[str, Any]

#: Tuple measurements split into one column each (suffixes in tuple order).
SPLIT_FIELDS: dict[str, tuple[str, ...]] = {"face_box": ("x", "y", "w", "h")}

#: Output formats by file suffix.
FORMATS = (".parquet", ".csv", ".jsonl")

_TEXT_SEPARATOR = "; "


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    #: False for columns that always have a value (``passed``, the code flags, the texts).
    nullable: bool = True


def _kind_of(annotation: Any) -> tuple[Kind | None, bool]:
    """(kind, is_tuple) of a ``Measurements`` annotation such as ``float | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is tuple or annotation is tuple:
        return None, True
    for kind, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if annotation is typ:
            return typing.cast(Kind, kind), False
    return None, False


def _measurement_columns() -> list[tuple[str, Column, tuple[str, ...] | None]]:
    """(field, column(s), split suffixes) for every Measurements field, in declaration order."""
    hints = typing.get_type_hints(Measurements)
    out: list[tuple[str, Column, tuple[str, ...] | None]] = []
    for name in Measurements.field_names():
        kind, is_tuple = _kind_of(hints.get(name, Any))
        if is_tuple and name in SPLIT_FIELDS:
            # element kind: tuple[int, int, int, int] -> int
            elem_args = [a for a in typing.get_args(hints[name]) if a is not type(None)]
            elems = typing.get_args(elem_args[0]) if elem_args else ()
            elem_kind, _ = _kind_of(elems[0]) if elems else ("float", False)
            out.append((name, Column(name, elem_kind or "float"), SPLIT_FIELDS[name]))
        else:
            # anything that is not a plain scalar is stored as JSON text
            out.append((name, Column(name, kind or "str"), None))
    return out


_MEASUREMENTS = _measurement_columns()


def columns() -> tuple[Column, ...]:
    """Every column of the table, in order."""
    cols = [Column("source", "str"), Column("passed", "bool", False), Column("policy", "str", False)]
    for name, col, split in _MEASUREMENTS:
        if split is None:
            cols.append(col)
        else:
            cols += [Column(f"{name}_{suffix}", col.kind) for suffix in split]
    cols += [Column(f"code_{code}", "bool", False) for code in ALL_CODES]
    cols += [Column("n_errors", "int", False), Column("n_warnings", "int", False),
             Column("issues", "str", False), Column("not_checked", "str", False)]
    return tuple(cols)


_COLUMNS = columns()
_KINDS = {c.name: c for c in _COLUMNS}


def column_names() -> list[str]:
    return [c.name for c in _COLUMNS]


# -- the policy column -------------------------------------------------------------------------

#: Separates a policy's name from its fingerprint in the ``policy`` column.
FINGERPRINT_SEPARATOR = "#"


def policy_fingerprint(policy: Policy) -> str:
    """8 hex digits of SHA-256 over every field of ``policy`` (canonical JSON, sorted keys).

    Equal policies have equal fingerprints, whichever way they were made (``224`` and ``224.0`` for
    a float field are the same value).
    """
    data = dataclasses.asdict(policy)
    for f in dataclasses.fields(policy):
        if type(f.default) is float:
            data[f.name] = float(data[f.name])
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:8]


@functools.lru_cache(maxsize=1)
def _preset_fingerprints() -> dict[str, str]:
    presets = (Policy.progeny_selfie(), Policy.progeny_document())
    return {p.name: policy_fingerprint(p) for p in presets}


def preset_names() -> frozenset[str]:
    """The names that, alone in the ``policy`` column, mean a preset's values."""
    return frozenset(_preset_fingerprints())


@functools.lru_cache(maxsize=64)
def policy_label(policy: Policy) -> str:
    """What the ``policy`` column says for ``policy``: which policy, all its values included.

    The preset's name (``progeny_selfie``, ``progeny_document``) for a policy equal to that preset;
    otherwise the name, ``#`` and :func:`policy_fingerprint` (``progeny_selfie#1f0c9a2e``: the
    selfie preset's name with other thresholds, or ``strict#5d41402a`` for a policy of its own).
    Screening runs write it in every row and resume only a file whose rows all have this label.
    """
    fingerprint = policy_fingerprint(policy)
    if _preset_fingerprints().get(policy.name) == fingerprint:
        return policy.name
    return f"{policy.name}{FINGERPRINT_SEPARATOR}{fingerprint}"


def labelled(report: Report, policy: Policy) -> Report:
    """``report`` of a check under ``policy``, its ``policy`` set to :func:`policy_label` (once)."""
    label = policy_label(policy)
    if report.policy != policy.name or report.policy == label:
        return report  # another policy's (a custom check chose its own), or labelled already
    return dataclasses.replace(report, policy=label)


# -- rows --------------------------------------------------------------------------------------

def _scalar(value: Any, kind: Kind) -> Any:
    """A plain Python value of ``kind`` (numpy scalars converted, NaN as None)."""
    if value is None:
        return None
    if kind == "float":
        number = float(value)
        return None if math.isnan(number) else number
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _one_line(text: str) -> str:
    """Texts stay on one line (a CSV row cut off by an interrupted write then stays one line too)."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def report_row(report: Report) -> Row:
    """One table row (a plain dict in column order) for ``report``."""
    source = None if report.source is None else printable(report.source)
    row: Row = {"source": source, "passed": report.passed, "policy": report.policy}
    m = report.measurements
    for name, col, split in _MEASUREMENTS:
        value = getattr(m, name)
        if split is None:
            if col.kind == "str" and isinstance(value, (tuple, list)):
                value = list(value)
            row[name] = _scalar(value, col.kind)
        else:
            parts = tuple(value) if value is not None else (None,) * len(split)
            for suffix, part in zip(split, parts):
                row[f"{name}_{suffix}"] = _scalar(part, col.kind)
    present = report.codes
    for code in ALL_CODES:
        row[f"code_{code}"] = code in present
    row["n_errors"] = len(report.errors)
    row["n_warnings"] = len(report.warnings)
    row["issues"] = printable(_one_line(_TEXT_SEPARATOR.join(f"{i.code}: {i.message}" for i in report.issues)))
    row["not_checked"] = printable(_one_line(_TEXT_SEPARATOR.join(f"{k}: {v}" for k, v in report.not_checked.items())))
    return row


def normalise_row(row: Mapping[str, Any]) -> Row:
    """A row with exactly the table's columns, in order, each value of its column's type."""
    out: Row = {}
    for col in _COLUMNS:
        value = row.get(col.name)
        if value is None and not col.nullable:
            value = "" if col.kind == "str" else (0 if col.kind == "int" else False)
        out[col.name] = _scalar(value, col.kind)
    return out


def to_records(reports: Iterable[Report | Mapping[str, Any]]) -> list[Row]:
    """Rows as plain dicts. Accepts reports and rows (e.g. from :func:`preflight.dask.screen_bag`)."""
    return [report_row(r) if isinstance(r, Report) else normalise_row(r) for r in reports]


def to_table(reports: Iterable[Report | Mapping[str, Any]]) -> Any:
    """A flat table of ``reports``: a pandas DataFrame, or a list of dicts without pandas.

    One row per report, in the order given. Column types: ``str`` columns are pandas ``string``,
    ``int`` columns ``Int64`` (nullable), ``float`` columns ``float64`` (NaN when not measured),
    flags ``bool``.
    """
    records = to_records(reports)
    try:
        import pandas as pd
    except ImportError:
        return records
    return records_to_frame(records, pd)


def records_to_frame(records: Sequence[Row], pd: Any = None) -> Any:
    """A DataFrame with the table's columns and dtypes from already-normalised rows."""
    if pd is None:
        pd = importlib.import_module("pandas")
    names = column_names()
    data: dict[str, Any] = {}
    for col in _COLUMNS:
        values = [r[col.name] for r in records]
        dtype = {"str": "string", "int": "Int64", "bool": "bool"}.get(col.kind)
        if col.kind == "float":
            data[col.name] = pd.array([math.nan if v is None else v for v in values], dtype="float64")
        else:
            data[col.name] = pd.array(values, dtype=dtype)
    return pd.DataFrame(data, columns=names)


def empty_frame() -> Any:
    """A DataFrame with no rows and the table's columns and dtypes (Dask's ``meta``)."""
    return records_to_frame([])


# -- files -------------------------------------------------------------------------------------

class RowWriter(Protocol):
    path: Path

    def write(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


def output_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputFileError(f"unsupported output {os.fspath(path)!r}: use a .parquet, .csv or .jsonl file")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OutputFileError(
                "writing .parquet needs pyarrow: pip install 'progeny-preflight[parquet]', or use .csv / .jsonl"
            ) from None
    return suffix


def journal_path(path: str | os.PathLike[str]) -> Path:
    """Where a Parquet output collects its rows until it is closed."""
    p = Path(path)
    return p.with_name(p.name + ".partial.jsonl")


def open_writer(path: str | os.PathLike[str], *, append: bool = True) -> RowWriter:
    """A writer of rows to ``path`` (.parquet, .csv or .jsonl).

    ``append=True`` keeps the rows already in the file; ``False`` starts a new file.
    """
    fmt = output_format(path)
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".jsonl":
        return JsonlWriter(p, append=append)
    if fmt == ".csv":
        return CsvWriter(p, append=append)
    return ParquetWriter(p, append=append)


def _trim_partial_line(path: Path) -> None:
    """Cut a last line that an interrupted write left without its newline."""
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        step, pos = 1 << 16, size
        while pos > 0:
            start = max(0, pos - step)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                fh.truncate(start + nl + 1)
                return
            pos = start
        fh.truncate(0)


class JsonlWriter:
    """One JSON object a line; each batch is written and flushed in one go."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        if append and path.exists():
            _trim_partial_line(path)
            _check_jsonl_columns(path)
        self._fh = path.open("a" if append else "w", encoding="utf-8", newline="\n")

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def check_columns(path: str | os.PathLike[str]) -> None:
    """Raise OutputFileError if ``path`` exists but is not a results file of this version (other columns).

    :func:`open_writer` checks this too; a run that resumes checks it first, before reading the file.
    A file that is not even text (not UTF-8, a broken Parquet file) raises what reading it raises.
    """
    fmt = output_format(path)
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return
    if fmt == ".jsonl":
        _check_jsonl_columns(p)
    elif fmt == ".csv":
        with p.open("rb") as fh:
            first = fh.readline()
        if not first.endswith(b"\n"):
            return  # a header cut off by a kill: the writer starts the file anew
        # not UTF-8 (UnicodeDecodeError) or garbled (csv.Error): unreadable rather than foreign, raised as is
        header = next(csv.reader([first.decode("utf-8")]), None)
        if header != column_names():
            raise OutputFileError(
                f"{p} has other columns than this version of preflight writes; use another output file"
            )
    else:
        _check_parquet_columns(p)


def _check_jsonl_columns(path: Path) -> None:
    """Refuse to append to a JSON lines file whose first row is not one of this table's rows."""
    with path.open("rb") as fh:
        first = fh.readline()
    if not first.endswith(b"\n"):
        return  # empty, or a first row cut off by a kill (dropped when appending): nothing to mix with
    text = first.decode("utf-8")  # not UTF-8: unreadable rather than foreign, raised as is (a ValueError)
    try:
        row = json.loads(text)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise OutputFileError(f"{path} is not a results file (its first line is not a JSON object); "
                              "use another output file")
    if set(row) != set(column_names()):
        raise OutputFileError(
            f"{path} has other columns than this version of preflight writes; use another output file"
        )


def _csv_text(value: Any) -> Any:
    return "" if value is None else value


class CsvWriter:
    """RFC 4180 CSV with a header row; ``None`` is an empty cell, floats keep every digit."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        names = column_names()
        exists = append and path.exists() and path.stat().st_size > 0
        if exists:
            _trim_partial_line(path)
            with path.open(encoding="utf-8", newline="") as fh:
                header = next(csv.reader(fh), None)
            if header is None:
                exists = False
            elif header != names:
                raise OutputFileError(
                    f"{path} has other columns than this version of preflight writes; use another output file"
                )
        self._fh = path.open("a" if exists else "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        if not exists:
            self._writer.writerow(names)
            self._fh.flush()

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            names = column_names()
            self._writer.writerows([[_csv_text(r[name]) for name in names] for r in rows])
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def arrow_schema() -> Any:
    import pyarrow as pa

    types_ = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    return pa.schema([pa.field(c.name, types_[c.kind], nullable=c.nullable) for c in _COLUMNS])


def rows_to_arrow(rows: Sequence[Row]) -> Any:
    import pyarrow as pa

    schema = arrow_schema()
    return pa.Table.from_pydict({c.name: [r[c.name] for r in rows] for c in _COLUMNS}, schema=schema)


class ParquetWriter:
    """Rows go to a JSON-lines journal; :meth:`close` folds the journal into the Parquet file."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        self.journal = journal_path(path)
        if not append:
            for stale in (path, self.journal):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        elif path.exists():
            _check_parquet_columns(path)
        self._journal = JsonlWriter(self.journal, append=True)

    def write(self, rows: Sequence[Row]) -> None:
        self._journal.write(rows)

    def close(self) -> None:
        self._journal.close()
        fold_journal(self.path)


def _check_parquet_columns(path: Path) -> None:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if names != column_names():
        raise OutputFileError(
            f"{path} has other columns than this version of preflight writes; use another output file"
        )


def fold_journal(path: str | os.PathLike[str]) -> None:
    """Rewrite the Parquet file ``path`` with its rows plus those of its journal, then drop the journal."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    journal = journal_path(p)
    new_rows = list(_read_jsonl(journal)) if journal.exists() else []
    if not new_rows and p.exists():
        with contextlib.suppress(FileNotFoundError):
            journal.unlink()
        return
    table = rows_to_arrow(new_rows)
    if p.exists():
        table = pa.concat_tables([pq.read_table(p, schema=arrow_schema()), table])
    tmp = p.with_name(p.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, p)
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()


def _read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # cut off by an interrupted write; the next run screens that image again
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value


def _from_csv(name: str, text: str) -> Any:
    col = _KINDS.get(name)
    if col is None:
        return text
    if text == "":
        return "" if (col.kind == "str" and not col.nullable) else None
    if col.kind == "bool":
        return text == "True"
    if col.kind == "int":
        return int(text)
    if col.kind == "float":
        return float(text)
    return text


def _read_csv(path: Path) -> Iterator[Row]:
    data = path.read_bytes()
    # What the writer keeps on resuming (:func:`_trim_partial_line`): up to the last newline. A row
    # cut off by an interrupted write is not done, even when the cut left all its cells.
    text = data[: data.rfind(b"\n") + 1].decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    for cells in reader:
        if len(cells) != len(header):
            continue  # a damaged row
        yield {name: _from_csv(name, cell) for name, cell in zip(header, cells)}


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """The rows of an output file, typed as :func:`to_records` makes them (a missing file: none).

    For Parquet, rows still in the journal of an unfinished run are included.
    """
    fmt = output_format(path)
    p = Path(path)
    if fmt == ".jsonl":
        return [normalise_row(r) for r in _read_jsonl(p)] if p.exists() else []
    if fmt == ".csv":
        return [normalise_row(r) for r in _read_csv(p)] if p.exists() else []
    rows: list[Row] = []
    if p.exists():
        import pyarrow.parquet as pq

        rows += [normalise_row(r) for r in pq.read_table(p).to_pylist()]
    journal = journal_path(p)
    if journal.exists():
        rows += [normalise_row(r) for r in _read_jsonl(journal)]
    return rows


def read_table(path: str | os.PathLike[str]) -> Any:
    """An output file as :func:`to_table` would have made it (DataFrame, or list of dicts)."""
    return to_table(read_rows(path))


def done_sources(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{source: policy name}`` of the rows already in an output file (empty when there is none)."""
    fmt = output_format(path)
    p = Path(path)
    done: dict[str, str] = {}
    if fmt == ".parquet":
        if p.exists():
            import pyarrow.parquet as pq

            table = pq.read_table(p, columns=["source", "policy"])
            for source, policy in zip(table.column("source").to_pylist(), table.column("policy").to_pylist()):
                if source is not None:
                    done[source] = policy
        p, fmt = journal_path(p), ".jsonl"  # rows of an unfinished run
    if not p.exists():
        return done
    rows = _read_jsonl(p) if fmt == ".jsonl" else _read_csv(p)
    for row in rows:
        source = row.get("source")
        if isinstance(source, str):
            done[source] = str(row.get("policy"))
    return done


def write_table(reports: Iterable[Report | Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write ``reports`` (or rows) to a new .parquet, .csv or .jsonl file; returns its path."""
    writer = open_writer(path, append=False)
    try:
        writer.write(to_records(reports))
    finally:
        writer.close()
    return writer.path
