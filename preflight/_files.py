"""Writing output files so that an interrupted run never leaves half a file behind."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile


def _read_umask() -> int:
    """The process's umask: from /proc on Linux, else by setting and restoring it (done once, at import),
    which for an instant changes it for every thread."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The mode ``open(path, "w")`` gives a new file (0o666 less the umask); mkstemp would leave 0o600.
_NEW_FILE_MODE = 0o666 & ~_read_umask()


def _mode_for(path: str) -> int:
    """Keep the mode of the file being replaced; a new file gets the ordinary one."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return _NEW_FILE_MODE


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, synced, then renamed over it.

    A failed or interrupted write leaves the old file (or none) and no temporary file; the new file gets
    the mode of the one it replaces, or the ordinary mode of a new file. A symlink is written through
    (its target is replaced, the link kept), as editors do.
    """
    path = os.path.realpath(os.fspath(path))
    if os.path.islink(path):  # still a link once resolved: a loop (renaming over it would drop it)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
