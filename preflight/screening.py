"""Screen many images: worker processes, a progress bar, incremental output, Ctrl-C and resume.

>>> import preflight
>>> with preflight.screen(["a.jpg", "b.png"], out="results.parquet") as run:   # doctest: +SKIP
...     for report in run:
...         print(report.source, report.passed)

Order: reports come back **in input order**, one per source, and each carries its source in
``report.source`` (the path exactly as given, ``os.fspath(source)``). With ``out=``, sources already
in that file are skipped (not yielded): see :func:`screen`.

Processes: ``workers`` processes are started with the ``spawn`` method (MediaPipe's threads and
``fork`` do not mix); each builds one :class:`~preflight.gate.Gate` in its initializer and loads the
face model there, once, and checks every image it is sent with it. Sources go to the workers in
small chunks, so the cost of talking to a process is paid per chunk, not per image.

Failures: a file that cannot be read, or that makes the check raise anything unexpected, becomes a
report with ``FAILED_TO_READ_IMAGE`` and the reason. If a worker process dies (a crash in a native
decoder), the images it held are retried one at a time in a fresh pool, and the one that kills a
worker again gets a ``FAILED_TO_READ_IMAGE`` report; the run goes on. Only programmer errors
(a model file that does not load, a source that is not a path) raise.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import itertools
import multiprocessing
import multiprocessing.util
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .codes import DEFAULT_SEVERITY, FAILED_TO_READ_IMAGE
from .errors import (
    InvalidSourceError,
    ModelError,
    OutputFileError,
    SourceNotFoundError,
    SourceReadError,
    WorkerStartError,
)
from .gate import Gate
from .policy import Policy
from .report import Issue, Measurements, Report, printable
from .table import (
    FINGERPRINT_SEPARATOR,
    RowWriter,
    check_columns,
    done_sources,
    labelled,
    open_writer,
    output_format,
    policy_label,
    preset_names,
    report_row,
)

#: File name extensions screened when walking a directory (case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)

#: A check function: (gate, source path) -> report. The default is :func:`check_source`.
CheckFn = Callable[[Gate, str], Report]

#: Consecutive images that each kill a worker process before the run gives up: past this, the
#: problem is the installation, not the files.
MAX_CONSECUTIVE_CRASHES = 10
WORKER_START_FAILED = "the worker processes died while starting, before checking any image"
MAIN_GUARD_HINT = (
    "; with the {method!r} start method every worker imports the main script, so put the code that calls"
    " screen() under `if __name__ == \"__main__\":`"
)


# -- finding images ----------------------------------------------------------------------------

def find_images(*paths: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under directories (recursively), glob matches (``**`` allowed) and plain files.

    Directories and glob matches keep files whose extension is in ``extensions``; a file named
    explicitly is kept whatever its name. Paths keep the form given (relative stays relative),
    each directory's files sorted, duplicates dropped. Names starting with a dot are left out unless
    named (a glob like ``.*.jpg`` names them). Symlinked folders are followed: a link back up the
    tree is not a loop, and a photo reached under two names (a folder linked twice) is listed once.

    Raises:
        SourceNotFoundError: an argument is neither a file, a directory nor a glob that matches.
        SourceReadError: a folder to search cannot be listed (no permission, an I/O error): screening
            without it would silently leave its photos out.
    """
    exts = {e.lower() for e in extensions}
    found: list[str] = []
    for arg in [os.fspath(p) for p in paths]:
        seen: set[tuple[int, int]] = set()  # folders this argument has listed, by (device, inode)
        if os.path.isdir(arg):
            found += _walk(arg, exts, seen)
        elif os.path.isfile(arg):
            found.append(arg)
        elif any(ch in arg for ch in "*?["):
            matches = _glob(arg, exts, seen)
            if not matches:
                raise SourceNotFoundError(f"no file matches {arg}")
            found += matches
        else:
            raise SourceNotFoundError(f"no such file or directory: {arg}")
    return list(dict.fromkeys(found))


def _walk(top: str, exts: set[str], seen: set[tuple[int, int]]) -> list[str]:
    """Files under ``top`` with an image extension.

    Folders are listed once each, symlinks followed; a folder that cannot be listed raises. Hidden
    files and folders are left out (``.cache/``, macOS's ``._photo.jpg`` companions).
    """
    def fail(error: OSError) -> None:
        raise _cannot_list(error.filename or top, error) from error

    out: list[str] = []
    if _identity(top) in seen:  # walked already (a glob matched it and a folder above it)
        return out
    # A folder is claimed when the walk enters it, in sorted order, depth first: of the names a
    # folder has (through symlinks), the one listed first wins, whatever order the disk lists them in.
    for root, dirs, files in os.walk(top, onerror=fail, followlinks=True):
        if not _first_visit(root, seen):
            dirs[:] = []  # entered under another name already (or a link back up the tree)
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files)
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts]
    return out


def _cannot_list(folder: str, error: OSError) -> SourceReadError:
    return SourceReadError(f"cannot list the folder {folder}: {error.strerror or error}")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _first_visit(folder: str, seen: set[tuple[int, int]]) -> bool:
    key = _identity(folder)
    if key is None:
        return True  # let os.walk report it
    if key in seen:
        return False
    seen.add(key)
    return True


#: How often ``**`` may enter one folder under different names (symlinks): bounds the work on link mazes.
MAX_NAMES_PER_FOLDER = 4


def _glob(pattern: str, exts: set[str], seen: set[tuple[int, int]]) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, component by component, with three differences: a folder
    that cannot be listed raises, ``**`` never loops through symlinks, and matched folders contribute
    the images under them (hidden names left out, as by ``**``)."""
    dirs_only = pattern.endswith(os.sep)
    base = os.sep if pattern.startswith(os.sep) else ""
    parts = [part for part in pattern.split(os.sep) if part]
    found: list[str] = []
    # a file reached under two names (a folder linked twice) counts once; the files' identities are
    # only gathered (one stat each) once a symlinked folder has been entered
    files: set[tuple[int, int] | None] | None = None
    for match, kind, via_link in _expand(base, parts, frozenset(), Counter(), False):
        if kind is None:  # a name given plainly: not listed, so not known yet
            try:
                mode = os.stat(match or os.curdir).st_mode
            except OSError:
                continue
            kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
        if kind == "dir":
            if match:
                below = _walk(match, exts, seen)
            else:  # the current folder (``**``): its paths stay relative, as glob gives them
                below = [os.path.relpath(path) for path in _walk(os.curdir, exts, seen)]
            found += below
            if files is not None:
                files |= {_identity(path) for path in below}
        elif kind == "file" and not dirs_only and os.path.splitext(match)[1].lower() in exts:
            if files is None and via_link:
                files = {_identity(path) for path in found}
            if files is not None:
                key = _identity(match)
                if key is None or key in files:
                    continue
                files.add(key)
            found.append(match)
    return found


#: A match: its path, "dir", "file", "other" or None (not known yet), and whether a symlinked folder led to it.
_Match = tuple[str, "str | None", bool]


def _expand(base: str, parts: list[str], chain: frozenset[tuple[int, int]],
            entered: Counter[tuple[int, int]], via_link: bool) -> Iterator[_Match]:
    """Paths below ``base`` matching the glob components ``parts`` (``**``: any number of folders).

    ``chain`` holds the folders ``**`` is inside (a link back to one is a loop); ``entered`` counts
    the names under which ``**`` entered each folder.
    """
    if not parts:
        yield base, ("dir" if base == "" else None), via_link
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        here = _identity(base or os.curdir)
        inside = chain if here is None else chain | {here}
        yield from _expand(base, rest, inside, entered, via_link)
        for name, kind, is_link in _list(base):
            if kind != "dir" or name.startswith("."):
                continue
            child = os.path.join(base, name)
            key = _identity(child)
            if key is None or key in inside:
                continue
            entered[key] += 1
            if entered[key] <= MAX_NAMES_PER_FOLDER:
                yield from _expand(child, parts, inside, entered, via_link or is_link)
        return
    if not any(ch in part for ch in "*?["):  # a plain name (also . and ..): no listing needed
        child = os.path.join(base, part)
        if rest and os.path.isdir(child):
            yield from _expand(child, rest, chain, entered, via_link or os.path.islink(child))
        elif not rest and os.path.lexists(child):
            yield child, None, via_link
        return
    for name, kind, is_link in _list(base):
        if (not name.startswith(".") or part.startswith(".")) and fnmatch.fnmatchcase(name, part):
            child = os.path.join(base, name)
            if not rest:
                yield child, kind, via_link
            elif kind == "dir":
                yield from _expand(child, rest, chain, entered, via_link or is_link)


def _list(folder: str) -> list[tuple[str, str, bool]]:
    """The sorted ``(name, "dir", "file" or "other" (links followed), is a symlink)`` in ``folder``;
    none if it is not a folder, SourceReadError if it cannot be read."""
    def kind(entry: os.DirEntry[str]) -> tuple[str, str, bool]:
        try:  # from the folder listing itself: no stat, except for symlinks
            what = "dir" if entry.is_dir() else "file" if entry.is_file() else "other"
            return entry.name, what, entry.is_symlink()
        except OSError:
            return entry.name, "other", False

    try:
        with os.scandir(folder or os.curdir) as entries:
            return sorted(kind(entry) for entry in entries)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise _cannot_list(folder or os.curdir, exc) from exc


def default_workers() -> int:
    """The CPUs this process may use (``os.sched_getaffinity`` where available, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# -- checking one source -------------------------------------------------------------------------

def failed_report(source: str | None, policy: Policy, reason: str) -> Report:
    """A ``FAILED_TO_READ_IMAGE`` report for a source whose check could not complete."""
    return Report(
        issues=(Issue.make(FAILED_TO_READ_IMAGE, f"failed to read image: {reason}"),),
        measurements=Measurements(),
        not_checked={"pixels": reason},
        source=source,
        policy=policy_label(policy),
    )


def read_error(exc: OSError, path: str) -> SourceNotFoundError | SourceReadError:
    """What reading the file ``path`` failing with ``exc`` means, in the words of a local check.

    :func:`preflight.gate.Gate.check` of a local path says ``no such file: PATH`` (missing, a
    dangling symlink, a symlink loop), ``PATH is a folder, not an image file`` or
    ``cannot read PATH: <the system's reason>`` (no permission, an I/O error); readers of other
    kinds (:func:`preflight.dask.check_path`, through fsspec) use this to say the same.
    """
    if isinstance(exc, (SourceNotFoundError, SourceReadError)):
        return exc
    if isinstance(exc, IsADirectoryError):
        return SourceNotFoundError(f"{path} is a folder, not an image file")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)) or exc.errno == errno.ELOOP:
        return SourceNotFoundError(f"no such file: {path}")
    if exc.errno == errno.ENAMETOOLONG:
        return SourceNotFoundError(f"no such file: {path} ({exc.strerror or exc})")
    return SourceReadError(f"cannot read {path}: {exc.strerror or exc}")


def failure_reason(exc: BaseException, source: str | None = None) -> str:
    """The reason written in the report of a source whose check raised ``exc``."""
    if isinstance(exc, SourceNotFoundError):  # its message says which: missing, or a folder
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return str(read_error(exc, str(source)))
    return f"unexpected error: {type(exc).__name__}: {exc}"


def check_source(gate: Gate, source: str) -> Report:
    """The default check of :func:`screen`: ``gate.check(source, name=source)``."""
    return gate.check(source, name=source)


def safe_check(check: CheckFn, gate: Gate, source: str) -> Report:
    """``check(gate, source)`` that never raises for a bad file (only for a model that cannot load).

    The report's ``policy`` is the gate policy's :func:`~preflight.table.policy_label`.
    """
    try:
        return labelled(check(gate, source), gate.policy)
    except ModelError:
        raise
    except Exception as exc:  # a vanished file, or a bug in a decoder: a report, never a crashed run
        return failed_report(source, gate.policy, failure_reason(exc, source))


# -- worker processes ------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(trim_threshold: int = 128 << 20, mmap_threshold: int = 32 << 20) -> bool:
    """Fix glibc's malloc thresholds in this process (``mallopt``); True if both took. Not on other libcs.

    A check allocates ~30 MB of short-lived buffers (a decoded 1080x1440 image alone is 4.5 MB).
    With a fixed mmap threshold of 32 MiB (the most glibc allows) they come from the heap, and
    with a 128 MiB trim threshold the freed heap is kept for the next image instead of being
    returned to the kernel and faulted in again: measurably less system time per image. Worker
    processes call this; the caller's own process is never changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def tune_worker_process(opencv_threads: int | None = 1, *, malloc: bool = True) -> dict[str, Any]:
    """Settings for a process that only checks images: :func:`tune_malloc`, and OpenCV's thread count.

    With one worker process per CPU, OpenCV's own thread pool (one thread per CPU in every
    process) only oversubscribes the machine.
    """
    done: dict[str, Any] = {"malloc": tune_malloc() if malloc else False}
    if opencv_threads is not None:
        import cv2

        cv2.setNumThreads(int(opencv_threads))
        done["opencv_threads"] = int(opencv_threads)
    return done


#: How often a worker checks that the process that started it is still alive (seconds).
PARENT_POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies; False if unavailable.

    The kernel sends it when the *thread* that started this process ends, so it is only asked for
    when that thread is the parent's main thread (whose end is the process's end).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return bool(prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0)


def exit_with_parent(parent_pid: int | None = None, *, death_signal: bool = True) -> None:
    """End this (worker) process soon after its parent process dies, however it dies.

    A pool worker blocks on its task queue, whose pipe it holds both ends of, so it never sees its
    parent go: after a ``kill -9`` of the parent it would live on, adopted by init, its model loaded.
    Here, on Linux, the kernel kills it with the parent (``PR_SET_PDEATHSIG``, when
    ``death_signal``), and everywhere a daemon thread checks ``os.getppid()`` every
    :data:`PARENT_POLL_SECONDS` and ends the process (``os._exit``) once it has changed.
    ``parent_pid``: the parent's pid if known (a parent that died already is then noticed too);
    ``None``: the current parent.
    """
    if death_signal:
        _set_parent_death_signal(signal.SIGKILL)
    current = os.getppid()
    if parent_pid is not None and current != parent_pid:  # it died before the signal was set up
        os._exit(1)

    def watch() -> None:
        while os.getppid() == current:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="preflight-parent-watch", daemon=True).start()


def _init_worker(
    policy: Policy, model_path: str | None, check: CheckFn | None, opencv_threads: int | None, started: Any = None,
    parent: tuple[int | None, bool] | None = None,
) -> None:
    """Process-pool initializer: one Gate for this process, model loaded now, closed at exit.

    ``started`` (a shared counter) is incremented once the initializer has run, so that the parent
    can tell workers that died starting up (a script without a main guard) from images that crash.
    ``parent``: :func:`exit_with_parent`'s arguments: the worker ends soon after its parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if parent is not None:
        exit_with_parent(parent[0], death_signal=parent[1])
    try:
        if opencv_threads is not None:
            _WORKER["tuning"] = tune_worker_process(opencv_threads)
        gate = Gate(policy, model_path=model_path)
        if policy.check_face:
            gate.load_model(quiet=True)
        # Close the landmarker explicitly when the worker exits (pool workers end with os._exit,
        # which skips atexit handlers; multiprocessing's own finalizers do run).
        multiprocessing.util.Finalize(None, gate.close, exitpriority=10)
        _WORKER.update(gate=gate, check=check or check_source, error=None)
    except Exception as exc:  # reported by the first task, so the parent sees the real error
        _WORKER.update(gate=None, check=None, error=exc)
    if started is not None:
        with started.get_lock():
            started.value += 1


def _check_chunk(items: list[tuple[int, str]]) -> tuple[int, int, list[tuple[int, Report]]]:
    """Task run in a worker: ``(pid, id of the worker's gate, [(index, report), ...])``."""
    error = _WORKER.get("error")
    if error is not None:
        raise error
    gate: Gate = _WORKER["gate"]
    check: CheckFn = _WORKER["check"]
    return os.getpid(), id(gate), [(i, safe_check(check, gate, source)) for i, source in items]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are spawned, so they start with it ignored.

    Otherwise a Ctrl-C while a worker is still importing would kill it with a traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _terminate(executor: ProcessPoolExecutor) -> None:
    for process in list(getattr(executor, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class WorkerStats:
    """What one process did: which gate it used, how many chunks and images it checked."""

    gates: set[int] = field(default_factory=set)
    chunks: int = 0
    images: int = 0


class Screening(Iterator[Report]):
    """An iterator of reports, in input order; see :func:`screen`. Close it (or use ``with``).

    Beyond :func:`screen`'s arguments: ``mp_context`` (the multiprocessing start method, ``spawn``
    by default), ``check`` (a picklable ``(gate, path) -> Report`` used instead of
    :func:`check_source`, e.g. to read from elsewhere) and ``tune_workers`` (``False`` leaves the
    worker processes' malloc and OpenCV threads alone; see :func:`tune_worker_process`).
    """

    def __init__(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        policy: Policy | None = None,
        workers: int | None = None,
        progress: bool = True,
        out: str | os.PathLike[str] | None = None,
        resume: bool = True,
        chunksize: int | None = None,
        model_path: str | os.PathLike[str] | None = None,
        mp_context: str = "spawn",
        check: CheckFn | None = None,
        tune_workers: bool = True,
    ) -> None:
        if isinstance(sources, (str, bytes, os.PathLike)):
            raise InvalidSourceError("screen() takes an iterable of paths; use find_images() for a directory or glob")
        self.policy = policy or Policy()
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if chunksize is not None and chunksize < 1:
            raise ValueError("chunksize must be at least 1")
        self.progress = progress
        self.out = Path(out) if out is not None else None
        self.resume = resume
        self.model_path = os.fspath(model_path) if model_path is not None else None
        self.mp_context = mp_context
        self._check = check
        self._started: Any = None  # the current pool's count of workers that finished starting
        self.tune_workers = tune_workers
        #: ``{source: policy}`` already in ``out``, skipped by this run.
        self.done: dict[str, str] = {}
        if self.out is not None:
            output_format(self.out)  # unknown suffix or missing pyarrow: fail before any work
            if resume:
                check_columns(self.out)  # a file of other rows: not "results of policy None"
                self.done = done_sources(self.out)
                _check_same_policy(self.out, self.done.values(), self.policy)
        #: Sources skipped because they are already in ``out`` (known up front for sized inputs).
        self.skipped = 0
        #: Number of sources to screen (None for a lazy iterable of unknown length).
        self.total: int | None = None
        self._sources: Iterable[str | os.PathLike[str]]
        if hasattr(sources, "__len__"):  # a list, tuple, set...: count and filter now
            given = list(sources)
            todo = [s for s in given if printable(_name(s)) not in self.done]
            self.skipped = len(given) - len(todo)
            self.total = len(todo)
            self._sources = todo
        else:
            self._sources = sources
        if chunksize is None:
            per_worker = (self.total // (self.workers * 16)) if self.total is not None else 4
            chunksize = max(1, min(8, per_worker))
        self.chunksize = chunksize
        #: Reports produced so far (yielded, plus any written to ``out`` while stopping).
        self.screened = 0
        self.passed = 0
        #: Per worker process id: the gates it used and what it checked.
        self.worker_stats: dict[int, WorkerStats] = {}
        #: ``(time.perf_counter(), images checked so far)`` each time a chunk is done, in the order
        #: the work finished (not the output order): for throughput measurements.
        self.timeline: list[tuple[float, int]] = []
        self._gen = self._run()

    # -- iterator protocol ---------------------------------------------------------------------
    def __iter__(self) -> Screening:
        return self

    def __next__(self) -> Report:
        return next(self._gen)

    def close(self) -> None:
        """Stop: cancel pending work, write what finished, shut the worker processes down."""
        self._gen.close()

    def __enter__(self) -> Screening:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _items(self) -> Iterator[tuple[int, str]]:
        index = 0
        for source in self._sources:
            name = _name(source)
            if self.total is None and printable(name) in self.done:
                self.skipped += 1
                continue
            yield index, name
            index += 1

    def _run(self) -> Generator[Report, None, None]:
        writer: RowWriter | None = None
        bar = None
        try:
            if self.out is not None:
                writer = open_writer(self.out, append=self.resume)
            bar = _progress_bar(self.progress, self.total, self.skipped)

            def emit(reports: Sequence[Report]) -> None:
                if not reports:
                    return
                if writer is not None:
                    writer.write([report_row(r) for r in reports])
                self.screened += len(reports)
                self.passed += sum(r.passed for r in reports)
                if bar is not None:
                    bar.update(len(reports))
                    bar.set_postfix(failed=self.screened - self.passed, refresh=False)

            if self.workers == 1 or (self.total is not None and self.total <= 1):
                yield from self._run_inline(emit)
            else:
                yield from self._run_pool(emit)
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()

    def _record(self, pid: int, gate_id: int, n: int) -> None:
        done = self.timeline[-1][1] if self.timeline else 0
        self.timeline.append((time.perf_counter(), done + n))
        stats = self.worker_stats.setdefault(pid, WorkerStats())
        stats.gates.add(gate_id)
        stats.chunks += 1
        stats.images += n

    def _run_inline(self, emit: Callable[[Sequence[Report]], None]) -> Iterator[Report]:
        check = self._check or check_source
        with Gate(self.policy, model_path=self.model_path) as gate:
            for n, (_, source) in enumerate(self._items()):
                if n == 0 and self.policy.check_face:
                    # as in the workers: without MediaPipe's C++ start-up lines on stderr (fd 2 is
                    # silenced for this process while the model loads), and only once there is work
                    gate.load_model(quiet=True)
                report = safe_check(check, gate, source)
                self._record(os.getpid(), id(gate), 1)
                emit([report])
                yield report

    def _new_executor(self) -> ProcessPoolExecutor:
        workers = self.workers if self.total is None else max(1, min(self.workers, self.total))
        context = multiprocessing.get_context(self.mp_context)
        self._started = context.Value("i", 0)
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.policy, self.model_path, self._check, self._opencv_threads(workers), self._started,
                      self._parent()),
        )

    def _parent(self) -> tuple[int | None, bool]:
        """For :func:`exit_with_parent` in the workers: ``(parent pid if this process, death signal)``."""
        # forkserver: the server is the workers' parent (it ends when this process does)
        pid = os.getpid() if self.mp_context in ("spawn", "fork") else None
        # workers are started by the thread that submits work, and the parent-death signal follows
        # that thread: only safe from the main thread (a run may be iterated from several threads)
        return pid, threading.current_thread() is threading.main_thread()

    def _opencv_threads(self, workers: int) -> int | None:
        """OpenCV threads per worker: the CPUs shared out (None: leave the workers untuned)."""
        return max(1, default_workers() // workers) if self.tune_workers else None

    def _run_pool(self, emit: Callable[[Sequence[Report]], None]) -> Iterator[Report]:
        items = self._items()
        exhausted = False
        inflight: dict[Future[Any], list[tuple[int, str]]] = {}
        ready: dict[int, Report] = {}
        suspects: deque[tuple[int, str]] = deque()  # retried one at a time after a worker died
        solo = False  # the only task in flight is one suspect: if the pool breaks, it is the culprit
        next_index = 0
        submitted = 0
        crashes_in_a_row = 0
        max_inflight = self.workers * 3
        max_ahead = max(64, self.workers * self.chunksize * 8)
        executor = self._new_executor()
        fresh = True
        try:
            while True:
                # 1. keep the workers busy (suspects go alone, so a crash names its image)
                with _sigint_ignored() if fresh else contextlib.nullcontext():
                    if suspects:
                        if not inflight:
                            item = suspects.popleft()
                            inflight[executor.submit(_check_chunk, [item])] = [item]
                            solo = True
                    else:
                        solo = False
                        while (not exhausted and len(inflight) < max_inflight
                               and submitted - next_index < max_ahead):
                            chunk = list(itertools.islice(items, self.chunksize))
                            if not chunk:
                                exhausted = True
                                break
                            inflight[executor.submit(_check_chunk, chunk)] = chunk
                            submitted += len(chunk)
                fresh = False
                # 2. hand out what is ready, in input order (written before it is yielded)
                batch: list[Report] = []
                while next_index in ready:
                    batch.append(ready.pop(next_index))
                    next_index += 1
                emit(batch)
                yield from batch
                if not inflight and not suspects and exhausted:
                    break
                # 3. wait for a chunk
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken: list[tuple[int, str]] = []
                for future in done:
                    chunk = inflight.pop(future)
                    if self._collect(future, ready):
                        crashes_in_a_row = 0
                    else:
                        broken += chunk
                if not broken:
                    continue
                # 4. a worker died: keep what the others finish, then start a fresh pool
                executor.shutdown(wait=True, cancel_futures=True)
                for future, chunk in list(inflight.items()):
                    del inflight[future]
                    if not self._collect(future, ready):
                        broken += chunk
                if self._started.value == 0:  # no worker got as far as its first image
                    hint = MAIN_GUARD_HINT.format(method=self.mp_context) if self.mp_context != "fork" else ""
                    raise WorkerStartError(
                        f"{WORKER_START_FAILED}{hint}. See the workers' errors above, or pass workers=1."
                    )
                if solo:
                    index, source = broken[0]
                    crashes_in_a_row += 1
                    if crashes_in_a_row >= MAX_CONSECUTIVE_CRASHES:
                        raise RuntimeError(
                            f"{crashes_in_a_row} images in a row killed their worker process (last: {source});"
                            " the installation, not the files, is likely at fault"
                        )
                    ready[index] = failed_report(
                        source, self.policy, "the worker process checking this file died (a crash in native code)"
                    )
                else:
                    suspects.extend(sorted(broken))
                executor = self._new_executor()
                fresh = True
        finally:
            for future in inflight:
                future.cancel()
            try:
                executor.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the running chunks
                _terminate(executor)
            for future in inflight:
                if future.done() and not future.cancelled():
                    with contextlib.suppress(Exception):
                        self._collect(future, ready)
            # finished but not handed out yet: write them, so that a resumed run does not redo them
            emit([ready[i] for i in sorted(ready)])

    def _collect(self, future: Future[Any], ready: dict[int, Report]) -> bool:
        """Store a finished chunk's reports; False if its worker died. Other errors propagate."""
        try:
            pid, gate_id, results = future.result()
        except BrokenProcessPool:
            return False
        self._record(pid, gate_id, len(results))
        ready.update(results)
        return True


def _check_same_policy(out: Path, labels: Iterable[str], policy: Policy) -> None:
    """Raise OutputFileError when ``out``'s rows were written with another policy than ``policy``.

    Rows carry :func:`~preflight.table.policy_label`: a name alone for a preset, else the name and a
    fingerprint of every value. So a policy that changes thresholds but keeps a preset's name is
    another policy, and a row with a bare name that is no preset's (written before labels had
    fingerprints) cannot be matched to any policy.
    """
    label = policy_label(policy)
    others = sorted({str(p) for p in labels if p != label})
    if not others:
        return
    why = ""
    if policy.name in others:  # a bare name: this run's policy is not what it stands for
        why = (f" (the {policy.name!r} preset; this run's policy has its name but other settings)"
               if policy.name in preset_names() else
               " (rows written by an older version, which did not record the policy's settings)")
    elif any(p.partition(FINGERPRINT_SEPARATOR)[0] == policy.name for p in others):
        why = " (the same name with other settings)"
    raise OutputFileError(
        f"{out} holds results of policy {', '.join(others)}, not {label}{why};"
        " use another output file, or start it anew (resume=False; --restart on the command line)"
    )


def _name(source: str | os.PathLike[str]) -> str:
    if isinstance(source, bytes) or not isinstance(source, (str, os.PathLike)):
        raise InvalidSourceError(f"screen() takes paths (str or os.PathLike), got {type(source).__name__}")
    name = os.fspath(source)
    if not isinstance(name, str):
        raise InvalidSourceError("screen() takes str paths, not bytes")
    return name


def _progress_bar(enabled: bool, total: int | None, skipped: int) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=None if total is None else total + skipped,
        initial=skipped,
        desc="screening",
        unit="img",
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.05,
    )


def screen(
    sources: Iterable[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    workers: int | None = None,
    progress: bool = True,
    out: str | os.PathLike[str] | None = None,
    resume: bool = True,
    chunksize: int | None = None,
    model_path: str | os.PathLike[str] | None = None,
) -> Screening:
    """Check many image files; an iterator of reports **in input order** (each carries its source).

    Args:
        sources: paths (``str`` or ``os.PathLike``); :func:`find_images` expands directories and globs.
            ``report.source`` is ``os.fspath(path)``, exactly as given.
        policy: the policy for every image (default: the Progeny selfie policy).
        workers: worker processes; ``None`` uses every CPU this process may run on; ``1`` checks in
            this process, without a pool. Each worker loads the face model once.
        progress: show a tqdm progress bar on stderr (if tqdm is installed).
        out: a ``.parquet``, ``.csv`` or ``.jsonl`` file. Rows are written as reports come in
            (flushed per batch), so an interrupted run loses nothing already screened.
        resume: with ``out``: skip the sources whose path is already in the file (they are not
            yielded; :attr:`Screening.skipped` counts them) and append the new rows. ``False``
            starts the file anew. Paths are compared as given: rerun from the same directory with
            the same arguments. A file written with another policy (another name, or other values
            under the same name: see :func:`~preflight.table.policy_label`) is refused.
        chunksize: sources per task sent to a worker (default: up to 8, fewer for small inputs).
        model_path: a face model other than the bundled one.

    Returns:
        A :class:`Screening`: iterate it, and close it (or use ``with``) if you stop early. Ctrl-C
        (KeyboardInterrupt) cancels the pending work, lets the running chunks finish and writes
        them to ``out``, shuts the pool down and re-raises.

    A file that cannot be read, or whose check raises unexpectedly, yields a report with
    ``FAILED_TO_READ_IMAGE`` and the reason; the run never stops for one file.
    """
    return Screening(
        sources, policy=policy, workers=workers, progress=progress, out=out, resume=resume,
        chunksize=chunksize, model_path=model_path,
    )


# -- summary ---------------------------------------------------------------------------------------

class SummaryBuilder:
    """Running counts for a :class:`Summary`: add reports or table rows one at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.passed = 0
        self.codes: Counter[str] = Counter()

    def add(self, item: Report | Mapping[str, Any]) -> None:
        if isinstance(item, Report):
            ok, present = item.passed, item.codes
        else:
            ok = bool(item["passed"])
            present = frozenset(k[5:] for k, v in item.items() if k.startswith("code_") and v)
        self.count += 1
        self.passed += ok
        self.codes.update(present)

    def build(self) -> Summary:
        ordered = tuple(sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0])))
        return Summary(count=self.count, passed=self.passed, code_counts=ordered)


@dataclass(frozen=True)
class Summary:
    """Counts over a table: images, passes, and how many images have each code."""

    count: int
    passed: int
    #: ``(code, images with that code)``, most frequent first.
    code_counts: tuple[tuple[str, int], ...]

    @property
    def failed(self) -> int:
        return self.count - self.passed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.count if self.count else 0.0

    @classmethod
    def of(cls, items: Iterable[Report | Mapping[str, Any]]) -> Summary:
        """Summarise reports or table rows (dicts with ``passed`` and ``code_*`` columns)."""
        builder = SummaryBuilder()
        for item in items:
            builder.add(item)
        return builder.build()

    def format(self, top: int = 10, *, locale: str | None = None) -> str:
        """Readable lines: the pass rate, then the ``top`` codes with counts (and hints in ``locale``)."""
        from .guidance import hint

        lines = [f"images: {self.count}   passed: {self.passed} ({100 * self.pass_rate:.1f}%)   failed: {self.failed}"]
        shown = self.code_counts[:top]
        if shown:
            lines.append("top codes (images with the code):")
            width = max(len(code) for code, _ in shown)
            for code, n in shown:
                severity = DEFAULT_SEVERITY.get(code, "?")
                line = f"  {code.ljust(width)}  {n:>8}  {100 * n / self.count:5.1f}%  {severity:7}"
                if locale:
                    line += f"  {hint(code, locale)}"
                lines.append(line.rstrip())
        return "\n".join(lines)
