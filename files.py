"""Files written whole or not at all, a set all new or all old, durable across a crash; and one lock per checkpoint.
A failure to write is one line naming the file and the cause, and the user's files stay as they were."""
import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from cli import UserError, signals_held


def check_writable(folder, flag, needed=0):
    """Create `folder` and write in it now, before the work; refuse it if it has under `needed` bytes free."""
    folder = Path(folder)
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise UserError(f"cannot write to {folder} ({error.strerror or error}); choose another folder with {flag}") from None
    if free < needed:
        raise UserError(f"not enough space in {folder}: about {size_text(needed)} is needed, {size_text(free)} is free; "
                        f"free some space or choose another folder with {flag}")


def size_text(count):
    """A byte count in words: 1.5 MB, 820 kB, 12 bytes."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def sync(path):
    """Flush a file's data, or a folder's entries, from the operating system's cache to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_paths(paths):
    """Yield a temporary path beside each of `paths`; together they replace `paths`, only if the block finishes.

    The renames run with Ctrl-C and SIGTERM held back. Temporaries are synced before their rename and folders after,
    as SQLite and PostgreSQL do: a crash of the machine leaves the old file or the new, never a partial one.
    """
    paths = [Path(path) for path in paths]
    # The temporaries keep the suffix: matplotlib and imageio pick the format from it.
    temporaries = [path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}") for path in paths]
    renamed = 0
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(path)
        yield temporaries
        for temporary in temporaries:
            sync(temporary)
        with signals_held():
            for temporary, path in zip(temporaries, paths):
                os.replace(temporary, path)
                renamed += 1
            for folder in dict.fromkeys(path.parent for path in paths):
                sync(folder)
    except OSError as error:
        failed = _failed_file(error, temporaries, paths)
        raise UserError(f"could not write {failed} ({error.strerror or error}); "
                        f"not updated: {', '.join(map(str, paths[renamed:]))}") from None
    finally:
        for temporary in temporaries:
            with contextlib.suppress(OSError):  # never hide the error that brought us here
                temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path):
    """atomic_paths for one file: yields its temporary."""
    with atomic_paths([path]) as (temporary,):
        yield temporary


def _failed_file(error, temporaries, paths):
    """The file a failed write was writing; an error from an open file names none: then the last one written."""
    by_temporary = dict(zip(map(str, temporaries), paths))
    if error.filename is not None:
        return by_temporary.get(error.filename, error.filename)
    written = [(temporary.stat().st_mtime_ns, index) for index, temporary in enumerate(temporaries) if temporary.exists()]
    return paths[max(written)[1]] if written else paths[0]


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its process id as it wrote it ("" if it had not yet)."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(path, wait=False):
    """Hold an advisory lock on `path` for the block, or raise LockHeld at once (with `wait`, wait for it).

    The operating system drops it when its holder exits or is killed, so none is left stale. The file holds the
    holder's pid; on a disk too full for the pid the lock is held all the same.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(os.pread(descriptor, 32, 0).decode(errors="replace").strip()) from None
        os.ftruncate(descriptor, 0)
        try:
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        yield
    finally:
        os.close(descriptor)  # and with it the lock


def _remove_stale_temporaries(path):
    for temporary in path.parent.glob(f".{path.stem}.*.tmp{path.suffix}"):
        pid = temporary.name[len(path.stem) + 2 :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                temporary.unlink()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
