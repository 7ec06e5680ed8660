from __future__ import annotations

import dataclasses
import os
import pickle
import types
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.bag as db
import fsspec
import pandas as pd
import pytest
from distributed import Client

from preflight import Policy, codes
from preflight import dask as pdask
from preflight.errors import SourceNotFoundError, SourceReadError
from preflight.report import Report
from preflight.screening import Screening, find_images
from preflight.table import column_names, to_records, to_table

FILE_POLICY = dataclasses.replace(Policy(), check_face=False, check_sharpness=False, check_exposure=False)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A real distributed.LocalCluster: 2 worker processes (nannies), one thread each."""
    saved = dict(os.environ)  # the nannies write their pre-spawn variables into this process's environment
    try:
        with pdask.local_cluster(n_workers=2, processes=True, threads_per_worker=1) as cluster, \
                Client(cluster) as c:
            c.wait_for_workers(2)
            yield c
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("source").reset_index(drop=True)


def test_dask_and_local_processes_give_identical_tables(
    client: Client, dataset_paths: list[str], local_run: tuple[list[Report], Screening]
) -> None:
    ddf = pdask.screen_dataframe(dataset_paths)
    assert list(ddf.columns) == column_names()
    assert ddf.npartitions > 2
    on_dask = ddf.compute()
    local = to_table(local_run[0])
    assert len(on_dask) == len(local) == len(dataset_paths)
    assert (on_dask.dtypes == local.dtypes).all()
    # every column, floats exactly: the same code on the same bytes
    pd.testing.assert_frame_equal(_sorted(on_dask), _sorted(local), check_exact=True)
    assert on_dask["code_FAILED_TO_READ_IMAGE"].sum() >= 9
    assert on_dask["passed"].sum() == sum(r.passed for r in local_run[0])


def test_bag_of_rows_or_reports(client: Client, dataset_paths: list[str],
                                local_run: tuple[list[Report], Screening]) -> None:
    subset = dataset_paths[::11]
    expected = [r for r in local_run[0] if r.source in set(subset)]
    rows = pdask.screen_bag(subset, npartitions=4).compute()
    assert rows == to_records(expected)  # a bag keeps the order of its paths
    reports = pdask.screen_bag(db.from_sequence(subset, npartitions=3), output="reports").compute()
    assert reports == expected
    frame = pdask.screen_dataframe(db.from_sequence(subset, npartitions=2)).compute()
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), to_table(expected), check_exact=True)


def test_model_loaded_once_per_worker_process_by_the_plugin(client: Client, dataset_paths: list[str]) -> None:
    pdask.screen_bag(dataset_paths[:40], npartitions=20).compute()
    info = client.run(pdask.worker_info)
    assert len(info) == 2
    pids = {i["pid"] for i in info.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    for address, i in info.items():
        assert i["plugin_gates"] == 1, (address, i)  # one gate, built in the plugin's setup()
        assert i["gates_built"] == 1 and i["cached_gates"] == 0, (address, i)  # never per task or image
        assert i["partitions"] > 1 and i["malloc_tuned"] >= 1, (address, i)
    assert sum(i["partitions"] for i in info.values()) >= 20
    # the helper's cluster did not give the workers the nanny's MALLOC_TRIM_THRESHOLD_=65536
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
    assert set(client.run(dask.config.get, "distributed.worker.profile.enabled").values()) == {False}


def test_plugin_builds_in_setup_and_closes_in_teardown() -> None:
    before = pdask.worker_info()["gates_built"]
    plugin = pdask.GatePlugin(Policy())
    clone = pickle.loads(pickle.dumps(plugin))  # what the scheduler sends to each worker
    assert pdask.worker_info()["gates_built"] == before  # nothing built in __init__
    assert clone.name == plugin.name == pdask.plugin_name(Policy())
    worker = types.SimpleNamespace()
    clone.setup(worker)
    gate = next(iter(worker._preflight_gates.values()))
    assert gate._analyzer is not None  # the model is loaded in setup(), not on the first image
    assert pdask.worker_info()["gates_built"] == before + 1
    clone.teardown(worker)
    assert worker._preflight_gates == {}
    with pytest.raises(RuntimeError, match="closed"):
        _ = gate.analyzer


def test_without_distributed_a_per_process_cache(dataset_paths: list[str],
                                                 local_run: tuple[list[Report], Screening]) -> None:
    subset = dataset_paths[:8]
    before = pdask.worker_info()["gates_built"]
    rows = pdask.screen_bag(subset, FILE_POLICY, npartitions=4).compute(scheduler="sync")
    assert pdask.worker_info()["gates_built"] == before + 1  # one gate for four partitions
    assert pdask.gate_for(FILE_POLICY) is pdask.gate_for(FILE_POLICY)
    assert [r["source"] for r in rows] == subset and len(rows[0]) == len(column_names())
    assert [r["code_FAILED_TO_READ_IMAGE"] for r in rows] == [
        codes.FAILED_TO_READ_IMAGE in r.codes for r in local_run[0][:8]
    ]


def test_any_fsspec_filesystem(dataset_paths: list[str], local_run: tuple[list[Report], Screening]) -> None:
    fs = fsspec.filesystem("memory")
    picked = [p for p in dataset_paths if p.endswith((".jpg", ".png"))][:4]
    urls = []
    for i, path in enumerate(picked):
        url = f"memory://screening-test/{i}{Path(path).suffix}"
        fs.pipe(url, Path(path).read_bytes())
        urls.append(url)
    try:
        expanded = pdask.expand_paths("memory://screening-test/*")
        assert [fs._strip_protocol(u) for u in expanded] == [fs._strip_protocol(u) for u in urls]
        got = pdask.screen_bag([*urls, "memory://screening-test/missing.jpg"], FILE_POLICY,
                               output="reports").compute(scheduler="sync")
    finally:
        fs.rm("memory://screening-test", recursive=True)
    local = {r.source: r for r in local_run[0]}
    for url, path, report in zip(urls, picked, got):
        assert report.source == url
        expected = pdask.check_path(pdask.gate_for(FILE_POLICY), path)
        assert dataclasses.replace(report, source=path) == expected
        assert report.measurements.file_bytes == local[path].measurements.file_bytes
    missing = got[-1]
    assert missing.codes == {codes.FAILED_TO_READ_IMAGE} and "no such file" in missing.issues[0].message


def test_expand_local_folder_and_glob(dataset: Path, dataset_paths: list[str]) -> None:
    assert sorted(pdask.expand_paths(str(dataset))) == sorted(dataset_paths)
    pngs = pdask.expand_paths(str(dataset / "**" / "*.png"))
    assert pngs and set(pngs) == {p for p in dataset_paths if p.endswith(".png")}
    assert set(find_images(str(dataset / "**" / "*.png"))) == set(pngs)


def test_expand_local_paths_like_find_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["a/1.jpg", "a/.2.jpg", "a/b/3.png", "a/.cache/4.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")  # a loop
    monkeypatch.chdir(tmp_path)
    assert pdask.expand_paths("a") == [str(tmp_path / "a" / "1.jpg"), str(tmp_path / "a" / "b" / "3.png")]
    assert pdask.expand_paths(f"file://{tmp_path}/a/.*.jpg") == [str(tmp_path / "a" / ".2.jpg")]
    with pytest.raises(SourceNotFoundError):
        pdask.expand_paths("nothing_here")
    real_scandir = os.scandir

    def scandir(path: str = ".") -> object:
        if os.fspath(path) == str(tmp_path / "a" / "b"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(SourceReadError, match="cannot list the folder"):  # fsspec would skip it silently
        pdask.expand_paths(str(tmp_path))


def test_expand_other_filesystems_by_the_same_rules() -> None:
    fs = fsspec.filesystem("memory")
    for name in [".data/photos/a.jpg", ".data/photos/.q.jpg", "d/sub/b.jpg", "d/c.jpg", "d/notes.txt"]:
        fs.pipe(f"/expand-test/{name}", b"x")
    try:
        # a hidden folder given literally does not make every hidden name below it wanted
        assert pdask.expand_paths("memory://expand-test/.data/photos/*.jpg") == [
            "memory:///expand-test/.data/photos/a.jpg"]
        assert pdask.expand_paths("memory://expand-test/.data/photos/.*.jpg") == [
            "memory:///expand-test/.data/photos/.q.jpg"]
        # a matched folder contributes the images under it
        assert pdask.expand_paths("memory://expand-test/d/*") == [
            "memory:///expand-test/d/c.jpg", "memory:///expand-test/d/sub/b.jpg"]
        with pytest.raises(SourceNotFoundError):
            pdask.expand_paths("memory://expand-test/nope/*.jpg")
    finally:
        fs.rm("/expand-test", recursive=True)
