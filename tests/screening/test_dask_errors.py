"""Files that cannot be read get the same rows on Dask (read through fsspec) as in a local run."""

from __future__ import annotations

import builtins
import dataclasses
import errno
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from preflight import Policy, screen
from preflight import dask as pdask
from preflight.table import to_table

FILE_POLICY = dataclasses.replace(Policy(), check_face=False, check_sharpness=False, check_exposure=False)


@pytest.fixture()
def bad_files(tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Relative paths, as a user gives them, to a photo and to files that cannot be read."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(samples / "biden.jpg", folder / "good.jpg")
    (folder / "dangling.jpg").symlink_to("missing.jpg")
    (folder / "loop1.jpg").symlink_to("loop2.jpg")
    (folder / "loop2.jpg").symlink_to("loop1.jpg")
    shutil.copy(samples / "biden.jpg", folder / "locked.jpg")
    monkeypatch.chdir(tmp_path)
    if os.geteuid() != 0:
        (folder / "locked.jpg").chmod(0)
    else:  # root reads anything: stand in for chmod 000 where both readers open files
        locked = str(folder / "locked.jpg")
        real_open = io.open

        def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == locked:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(io, "open", deny)  # pathlib's
        monkeypatch.setattr(builtins, "open", deny)  # fsspec's
    paths = ["photos/good.jpg", "photos/dangling.jpg", "./photos/loop1.jpg", "photos/sub", "photos/gone.jpg",
             "photos/locked.jpg"]
    return paths


def test_unreadable_files_give_the_local_rows(bad_files: list[str]) -> None:
    with screen(bad_files, policy=FILE_POLICY, workers=1, progress=False) as run:
        local = to_table(list(run))
    dask = pdask.screen_dataframe(bad_files, FILE_POLICY).compute(scheduler="sync").reset_index(drop=True)
    issues = dict(zip(dask["source"], dask["issues"]))
    reason = "FAILED_TO_READ_IMAGE: failed to read image: "
    assert issues["photos/dangling.jpg"] == reason + "no such file: photos/dangling.jpg"
    assert issues["./photos/loop1.jpg"] == reason + "no such file: photos/loop1.jpg"
    assert issues["photos/sub"] == reason + "photos/sub is a folder, not an image file"
    assert issues["photos/gone.jpg"] == reason + "no such file: photos/gone.jpg"
    assert issues["photos/locked.jpg"] == reason + "cannot read photos/locked.jpg: Permission denied"
    assert not dask["issues"].str.contains("unexpected error|Errno|/tmp/").any()
    pd.testing.assert_frame_equal(dask, local)  # every column, the policy label too


def test_bag_reports_match_too(bad_files: list[str]) -> None:
    reports = pdask.screen_bag(bad_files, FILE_POLICY, output="reports").compute(scheduler="sync")
    with screen(bad_files, policy=FILE_POLICY, workers=1, progress=False) as run:
        local = list(run)
    assert [dataclasses.replace(r, elapsed_ms=None) for r in reports] == \
        [dataclasses.replace(r, elapsed_ms=None) for r in local]
