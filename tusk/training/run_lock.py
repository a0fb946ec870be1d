"""One trainer per run directory: an OS advisory lock on ``RUN_DIR/train.lock``.

Two trainers writing one run directory mix it silently (the config of one, the checkpoint of
the other). A trainer therefore holds an exclusive ``flock`` on ``RUN_DIR/train.lock`` for as
long as it reads or writes the run, and a second one is refused at once
(:class:`RunLockError`, naming the holder's pid, host and start time, which the holder writes
into the file). The kernel releases the lock when the holder's process ends, however it ends
(``SIGKILL``, a crash, a lost machine's NFS lease), so there is never a stale lock to delete by
hand; the file itself stays, and an unlocked one means nothing.

The lock is per process and re-entrant: ``tusk train`` takes it before it reads the run, the
:class:`~tusk.training.Trainer` it then creates takes it again (a no-op) for each phase. A
distributed run takes it on the process that writes the run (rank 0) only. It works on local
file systems and on NFS (Linux maps ``flock`` to NFS byte-range locks); where the file system
refuses locks (some FUSE mounts), or on a platform without ``fcntl`` (Windows), a warning says
the run is unprotected and training goes on.

This module needs only the standard library.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILENAME = "train.lock"


class RunLockError(RuntimeError):
    """The run directory is in use by another trainer (or changed under this one)."""


class _Held:
    """A lock this process holds: the open lock file and how many holders share it."""

    def __init__(self, fd: int | None, created_directory: bool):
        self.fd = fd
        self.count = 1
        self.created_directory = created_directory


_held: dict[str, _Held] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def hold_run_lock(run_dir: str | os.PathLike, *, enabled: bool = True) -> Iterator[str]:
    """Hold the lock of ``run_dir`` (created if missing) for the ``with`` block; yields the lock
    file's path.

    Re-entrant within a process. A directory this call created and that holds nothing but the
    lock file on release (a run that failed before writing anything) is removed again.
    ``enabled=False`` makes it a no-op: the processes of a distributed run that do not write the
    run directory must not take the lock their writer holds.

    Raises:
        RunLockError: another process holds the lock.
        NotADirectoryError: ``run_dir`` exists and is not a directory.
    """
    directory = os.path.realpath(os.fspath(run_dir))
    if not enabled:
        yield os.path.join(directory, LOCK_FILENAME)
        return
    with _guard:
        held = _held.get(directory)
        if held is not None:
            held.count += 1
        else:
            held = _held[directory] = _acquire(directory, os.fspath(run_dir))
    try:
        yield os.path.join(directory, LOCK_FILENAME)
    finally:
        with _guard:
            held.count -= 1
            if held.count == 0:
                del _held[directory]
                _release(directory, held)


def _acquire(directory: str, shown: str) -> _Held:
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"run directory {shown} exists and is not a directory", shown)
    created = not os.path.exists(directory)
    path = os.path.join(directory, LOCK_FILENAME)
    if fcntl is None:
        os.makedirs(directory, exist_ok=True)
        warnings.warn(f"{shown}: no file locking on this platform; nothing stops a second trainer from "
                      "writing this run at the same time", RuntimeWarning, stacklevel=4)
        return _Held(None, created)
    while True:
        os.makedirs(directory, exist_ok=True)  # again after a releasing holder removed it
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockError(f"{shown} is in use by another trainer ({holder}); wait for it to finish, or "
                               "choose another run directory") from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                raise
            warnings.warn(f"{shown}: the file system refuses locks ({err.strerror}); nothing stops a second "
                          "trainer from writing this run at the same time", RuntimeWarning, stacklevel=4)
            return _Held(None, created)
        # A releasing holder may have deleted the file between our open and our lock (see
        # _release): then we locked an orphan, and must lock the file now at that path.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    _write_holder(fd)
    return _Held(fd, created)


def _release(directory: str, held: _Held) -> None:
    if held.fd is None:
        return
    try:
        # Nothing was written: leave no empty run behind. Unlinking before unlocking is what
        # makes this safe against a process that opened the file meanwhile (_acquire checks
        # that it locked the file still at the path).
        with contextlib.suppress(OSError):
            if held.created_directory and os.listdir(directory) == [LOCK_FILENAME]:
                os.remove(os.path.join(directory, LOCK_FILENAME))
                os.rmdir(directory)
    finally:
        os.close(held.fd)  # releases the flock


def _write_holder(fd: int) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read_holder(fd: int) -> str:
    """``pid N on HOST since TIME`` from the holder's record (or a plain phrase if unreadable)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {record['pid']} on {record['host']} since {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its process did not say which it is"


def file_signature(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """``(device, inode, size, mtime_ns)`` of a file, or None if absent: a file replaced or
    rewritten since an earlier call has another signature."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
