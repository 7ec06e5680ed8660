"""Screen on Dask: a bag of table rows or a DataFrame, the face model loaded once per worker process.

>>> from distributed import Client                                  # doctest: +SKIP
>>> from preflight.dask import local_cluster, screen_dataframe      # doctest: +SKIP
>>> with local_cluster(n_workers=2) as cluster, Client(cluster):    # doctest: +SKIP
...     df = screen_dataframe("s3://bucket/selfies/**/*.jpg").compute()

Paths are read with ``fsspec.open(path, "rb")``, so anything the user's Dask can read works
(local paths, ``s3://``, ``gs://``, ``abfs://``... with their fsspec packages installed);
``storage_options`` are passed to fsspec. The rows are exactly :func:`preflight.to_table`'s (same
code, same bytes: the same numbers as :func:`preflight.screen`).

**One model per worker process.** With a ``distributed`` client, :func:`screen_bag` registers a
:class:`GatePlugin` (idempotent, one per policy): its ``setup()`` builds the
:class:`~preflight.gate.Gate` and loads the model on each worker (never in ``__init__``: the plugin is
pickled to the workers), and its ``teardown()`` closes the landmarker explicitly (MediaPipe raises
at interpreter exit otherwise). Without ``distributed`` (the threaded or multiprocessing
schedulers) a per-process cache keyed by policy does the same job.

**malloc.** Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``). Setting any malloc threshold switches off glibc's
dynamic mmap threshold, so every large short-lived buffer (a decoded 1080x1440 image is 4.5 MB;
a check allocates ~30 MB of them) becomes an ``mmap``/``munmap`` pair with fresh page faults:
system time more than doubles. The plugin's ``setup()`` therefore calls ``mallopt`` (glibc only;
:func:`preflight.screening.tune_malloc`) to fix the mmap threshold at its maximum (32 MiB) and the
trim threshold at 128 MiB, as :func:`preflight.screen` does in its own worker processes, and
:func:`local_cluster` does not set the variable in the first place. The ``dask, nanny malloc`` row
of ``bench/bench_screen.py`` shows the difference (see ``docs/screening.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import math
import multiprocessing.util
import os
import threading
import typing
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Any, Literal

import dask
import dask.bag
import dask.dataframe
from dask.bag import Bag
from dask.dataframe import DataFrame
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import ModelError, SourceNotFoundError
from .gate import Gate
from .loading import MAX_READ_BYTES
from .policy import Policy
from .report import Report
from .screening import (
    IMAGE_EXTENSIONS,
    failed_report,
    failure_reason,
    find_images,
    read_error,
    tune_worker_process,
)
from .table import empty_frame, labelled, records_to_frame, report_row

Output = Literal["rows", "reports"]

#: Partition sizes :func:`screen_bag` makes from a list of paths (task overhead vs. load balance).
MIN_PARTITION_SIZE = 8
MAX_PARTITION_SIZE = 64

# dask's functions are only partly annotated: call them through Any to keep ``mypy --strict`` useful here
_db: Any = dask.bag
_dd: Any = dask.dataframe
_delayed: Any = getattr(dask, "delayed")  # noqa: B009

_lock = threading.Lock()
_cache: dict[tuple[Policy, str | None], Gate] = {}
#: What this process did (see :func:`worker_info`).
_counters = {"gates_built": 0, "partitions": 0, "images": 0, "malloc_tuned": 0}


def _key(policy: Policy, model_path: str | None) -> tuple[Policy, str | None]:
    return policy, model_path


def plugin_name(policy: Policy | None = None, model_path: str | os.PathLike[str] | None = None) -> str:
    """The (stable) name of the plugin for this policy and model."""
    policy = policy or Policy()
    path = os.fspath(model_path) if model_path is not None else None
    digest = hashlib.sha1(repr((policy, path)).encode()).hexdigest()[:12]
    return f"preflight-gate-{policy.name}-{digest}"


def _build_gate(policy: Policy, model_path: str | None) -> Gate:
    gate = Gate(policy, model_path=model_path)
    if policy.check_face:
        _ = gate.analyzer  # load the model now, not in the middle of the first task
    _counters["gates_built"] += 1
    return gate


class GatePlugin(WorkerPlugin):
    """A distributed worker plugin holding one :class:`~preflight.gate.Gate` per worker process.

    Only settings are stored at construction (the plugin is pickled to every worker); the gate
    and its model are built in :meth:`setup` and closed in :meth:`teardown`. ``setup()`` also
    tunes the worker process (:func:`preflight.screening.tune_worker_process`): malloc thresholds
    unless ``malloc_fix=False``, and OpenCV's thread pool to ``opencv_threads`` (default 1: Dask
    runs tasks in parallel, one per worker thread; ``None`` leaves OpenCV alone).
    """

    idempotent = True

    def __init__(
        self,
        policy: Policy | None = None,
        model_path: str | os.PathLike[str] | None = None,
        *,
        malloc_fix: bool = True,
        opencv_threads: int | None = 1,
    ) -> None:
        self.policy = policy or Policy()
        self.model_path = os.fspath(model_path) if model_path is not None else None
        self.malloc_fix = malloc_fix
        self.opencv_threads = opencv_threads
        self.name = plugin_name(self.policy, self.model_path)

    def setup(self, worker: Any) -> None:
        tuned = tune_worker_process(self.opencv_threads, malloc=self.malloc_fix)
        _counters["malloc_tuned"] += bool(tuned["malloc"])
        gates = _worker_gates(worker)
        key = _key(self.policy, self.model_path)
        if key not in gates:
            gates[key] = _build_gate(self.policy, self.model_path)

    def teardown(self, worker: Any) -> None:
        gate = _worker_gates(worker).pop(_key(self.policy, self.model_path), None)
        if gate is not None:
            gate.close()


def _worker_gates(worker: Any) -> dict[tuple[Policy, str | None], Gate]:
    gates: dict[tuple[Policy, str | None], Gate] | None = getattr(worker, "_preflight_gates", None)
    if gates is None:
        gates = {}
        worker._preflight_gates = gates
    return gates


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _close_cached() -> None:
    with _lock:
        gates = list(_cache.values())
        _cache.clear()
    for gate in gates:
        with contextlib.suppress(Exception):
            gate.close()


def gate_for(policy: Policy | None = None, model_path: str | os.PathLike[str] | None = None) -> Gate:
    """The gate of this process for ``policy``: the plugin's on a distributed worker, else a cached one.

    The cached gates are closed when the process exits (also in multiprocessing pool workers,
    which skip ``atexit``).
    """
    policy = policy or Policy()
    path = os.fspath(model_path) if model_path is not None else None
    key = _key(policy, path)
    worker = _current_worker()
    if worker is not None:
        found: Gate | None = getattr(worker, "_preflight_gates", {}).get(key)
        if found is not None:
            return found
    with _lock:
        gate = _cache.get(key)
        if gate is None:
            if not _cache:
                atexit.register(_close_cached)
                multiprocessing.util.Finalize(None, _close_cached, exitpriority=10)
            gate = _cache[key] = _build_gate(policy, path)
        return gate


def worker_info(dask_worker: Any = None) -> dict[str, Any]:
    """Counters of this process: gates built, partitions and images screened, malloc tuned.

    Run it on the workers with ``client.run(preflight.dask.worker_info)`` (which passes
    ``dask_worker``).
    """
    worker = dask_worker if dask_worker is not None else _current_worker()
    plugin_gates = len(getattr(worker, "_preflight_gates", {})) if worker is not None else 0
    return {"pid": os.getpid(), **_counters, "plugin_gates": plugin_gates, "cached_gates": len(_cache)}


# -- reading and checking ----------------------------------------------------------------------

def check_path(gate: Gate, path: str, storage_options: dict[str, Any] | None = None) -> Report:
    """Read ``path`` through fsspec and check the bytes; a report for any bad file, never a raise.

    A file that cannot be read gets the report a local run gives it (the same reason, the path as
    given: :func:`preflight.screening.read_error`), so that both tables are identical.
    """
    fsspec: Any = importlib.import_module("fsspec")
    try:
        try:
            with fsspec.open(path, "rb", **(storage_options or {})) as fh:
                data = fh.read(MAX_READ_BYTES + 1)
        except OSError as exc:
            # a local check names the path as pathlib prints it (``./a.jpg`` is ``a.jpg``)
            shown = path if "://" in path else str(PurePath(path))
            return failed_report(path, gate.policy, str(read_error(exc, shown)))
        return labelled(gate.check(data, name=path), gate.policy)
    except ModelError:
        raise
    except Exception as exc:
        return failed_report(path, gate.policy, failure_reason(exc, path))


def _screen_partition(
    paths: Iterable[str],
    policy: Policy,
    model_path: str | None,
    kind: Output,
    storage_options: dict[str, Any] | None,
) -> list[Any]:
    gate = gate_for(policy, model_path)
    reports = [check_path(gate, os.fspath(p), storage_options) for p in paths]
    _counters["partitions"] += 1
    _counters["images"] += len(reports)
    return reports if kind == "reports" else [report_row(r) for r in reports]


def _frame_partition(
    paths: Sequence[str],
    policy: Policy,
    model_path: str | None,
    storage_options: dict[str, Any] | None,
) -> Any:
    return records_to_frame(_screen_partition(paths, policy, model_path, "rows", storage_options))


def _rows_to_frame(rows: Sequence[dict[str, Any]]) -> Any:
    return records_to_frame(rows)


# -- paths -------------------------------------------------------------------------------------

def expand_paths(
    url: str,
    storage_options: dict[str, Any] | None = None,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> list[str]:
    """The image files under a directory or matching a glob, on any fsspec filesystem.

    Local paths are expanded by :func:`preflight.screening.find_images` (same rules, made absolute,
    so that workers elsewhere find them; a folder that cannot be listed raises, where fsspec would
    skip it). Others keep their protocol (``s3://bucket/key.jpg``); hidden names are left out there
    too, unless the glob names them.
    """
    url_to_fs: Any = importlib.import_module("fsspec.core").url_to_fs
    fs, root = url_to_fs(url, **(storage_options or {}))
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        return find_images(root, extensions=extensions)
    exts = {e.lower() for e in extensions}
    wildcard = any(ch in root for ch in "*?[")
    if wildcard:
        found: list[str] = []
        for match in fs.glob(root):  # as locally: a matched folder contributes the images under it
            found += fs.find(match) if fs.isdir(match) else [match]
        if not found:
            raise SourceNotFoundError(f"no file matches {url}")
    elif fs.isdir(root):
        found = list(fs.find(root))
    else:
        return [fs.unstrip_protocol(root)]
    # hidden names are judged below the part of the path given literally, unless the glob names them
    fixed = root[: min(root.find(ch) for ch in "*?[" if ch in root)].rpartition("/")[0] if wildcard else root
    named_hidden = wildcard and any(part.startswith(".") for part in root[len(fixed):].split("/"))
    found = sorted(
        {p for p in found
         if os.path.splitext(p)[1].lower() in exts
         and (named_hidden or not any(part.startswith(".") for part in p[len(fixed):].split("/")))}
    )
    return [fs.unstrip_protocol(p) for p in found]


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
              storage_options: dict[str, Any] | None) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return expand_paths(os.fspath(paths), storage_options)
    return [os.fspath(p) for p in paths]


def _chunks(paths: Sequence[str], npartitions: int | None) -> list[list[str]]:
    """Consecutive runs of paths, one per partition.

    By default 8 to 64 paths each (about 100 partitions for mid-sized inputs, at least 4 for small
    ones): a partition is then hundreds of milliseconds of work, far above a task's overhead, and
    small enough for the last tasks not to leave workers idle for long.
    """
    n = len(paths)
    if n == 0:
        return []
    if npartitions is None:
        size = min(MAX_PARTITION_SIZE, max(MIN_PARTITION_SIZE, math.ceil(n / 100)), math.ceil(n / 4))
    else:
        size = math.ceil(n / max(1, min(n, npartitions)))
    return [list(paths[i : i + size]) for i in range(0, n, size)]


def _register_if_distributed(policy: Policy, model_path: str | None, malloc_fix: bool) -> str | None:
    try:
        from distributed import default_client

        client = typing.cast(Any, default_client)()
    except (ImportError, ValueError):
        return None
    return register(client, policy, model_path, malloc_fix=malloc_fix)


def register(
    client: Any,
    policy: Policy | None = None,
    model_path: str | os.PathLike[str] | None = None,
    *,
    malloc_fix: bool = True,
) -> str:
    """Register the :class:`GatePlugin` for ``policy`` on ``client``'s workers (idempotent); its name."""
    plugin = GatePlugin(policy, model_path, malloc_fix=malloc_fix)
    client.register_plugin(plugin, name=plugin.name)
    return plugin.name


# -- public API --------------------------------------------------------------------------------

def screen_bag(
    paths_or_bag: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Bag,
    policy: Policy | None = None,
    *,
    output: Output = "rows",
    npartitions: int | None = None,
    storage_options: dict[str, Any] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    malloc_fix: bool = True,
) -> Bag:
    """A lazy Dask bag with one item per image: a table row (``dict``) or, with ``output="reports"``,
    the :class:`~preflight.report.Report`.

    Args:
        paths_or_bag: a list of paths or URLs, a directory or glob (expanded with fsspec, see
            :func:`expand_paths`), or a ``dask.bag.Bag`` of paths.
        policy: the policy (default: the Progeny selfie policy).
        output: ``"rows"`` (the columns of :func:`preflight.to_table`) or ``"reports"``.
        npartitions: partitions for a list of paths (default: 8 to 64 paths each, see ``_chunks``).
        storage_options: passed to ``fsspec.open``.
        model_path: a face model other than the bundled one.
        malloc_fix: let the worker plugin undo the nanny's malloc setting (see the module docs).

    With a ``distributed`` client active, the :class:`GatePlugin` for ``policy`` is registered
    first (once), so each worker process loads the model once, in the plugin's ``setup()``.
    """
    policy = policy or Policy()
    path = os.fspath(model_path) if model_path is not None else None
    if output not in ("rows", "reports"):
        raise ValueError("output must be 'rows' or 'reports'")
    if isinstance(paths_or_bag, Bag):
        bag = paths_or_bag
    else:
        paths = _as_paths(paths_or_bag, storage_options)
        chunks = _chunks(paths, npartitions)
        bag = _db.from_sequence(paths, partition_size=len(chunks[0]) if chunks else 1)
    _register_if_distributed(policy, path, malloc_fix)
    result: Bag = typing.cast(Any, bag).map_partitions(
        _screen_partition, policy=policy, model_path=path, kind=output, storage_options=storage_options
    )
    return result


def screen_dataframe(
    paths_or_bag: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Bag,
    policy: Policy | None = None,
    *,
    npartitions: int | None = None,
    storage_options: dict[str, Any] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    malloc_fix: bool = True,
) -> DataFrame:
    """A lazy Dask DataFrame with exactly :func:`preflight.to_table`'s columns and dtypes.

    Arguments as for :func:`screen_bag`. Row order within the frame follows the paths; the index
    restarts in every partition (use ``.reset_index(drop=True)`` after ``compute()`` if needed).
    """
    policy = policy or Policy()
    path = os.fspath(model_path) if model_path is not None else None
    meta = empty_frame()
    if isinstance(paths_or_bag, Bag):
        rows = screen_bag(paths_or_bag, policy, output="rows", storage_options=storage_options,
                          model_path=path, malloc_fix=malloc_fix)
        parts = [_delayed(_rows_to_frame)(part) for part in typing.cast(Any, rows).to_delayed()]
        frame: DataFrame = _dd.from_delayed(parts, meta=meta, verify_meta=False)
        return frame
    chunks = _chunks(_as_paths(paths_or_bag, storage_options), npartitions)
    _register_if_distributed(policy, path, malloc_fix)
    if not chunks:
        frame = _dd.from_pandas(meta, npartitions=1)
        return frame
    frame = _dd.from_map(
        _frame_partition, chunks, policy=policy, model_path=path, storage_options=storage_options,
        meta=meta, label="preflight-screen", enforce_metadata=False,
    )
    return frame


#: Dask settings of :func:`local_cluster` (see the module docs).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    # the nanny would start workers with MALLOC_TRIM_THRESHOLD_=65536
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # the statistical profiler samples every task thread every 10 ms: measured 5-10% of throughput
    "distributed.worker.profile.enabled": False,
}


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, **kwargs: Any) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of worker processes, one thread each, set up for screening.

    The nanny does not set ``MALLOC_TRIM_THRESHOLD_`` and the workers' profiler is off
    (:data:`LOCAL_CLUSTER_CONFIG`); any keyword is passed to ``LocalCluster``.
    """
    from distributed import LocalCluster

    kwargs.setdefault("processes", True)
    kwargs.setdefault("threads_per_worker", 1)
    kwargs.setdefault("dashboard_address", None)
    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            typing.cast(Any, LocalCluster)(n_workers=n_workers, **kwargs) as cluster:
        yield cluster
