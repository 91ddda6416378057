"""Writing files so that each is whole or not there, and a set of files is all new or all as it was.

Checkpoints, figures, GIFs and metrics all go through here; a failure to write (a full disk, a folder that is a
file) is one line naming the file and the cause, and the files the user had stay as they were.
"""
import contextlib
import os
from pathlib import Path

from cli import UserError, signals_held


def check_writable(folder, flag):
    """Create `folder` and write a file in it now, before the work whose results go there."""
    folder = Path(folder)
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to {folder} ({error.strerror or error}); choose another folder with {flag}") from None


@contextlib.contextmanager
def atomic_paths(paths):
    """Yield a temporary path beside each of `paths`; together they replace `paths`, only if the block finishes.

    The renames run with Ctrl-C and SIGTERM held back, so an interruption leaves the whole old set or the whole
    new one; a temporary left by a killed process is removed the next time its file is written.
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
        with signals_held():
            for temporary, path in zip(temporaries, paths):
                os.replace(temporary, path)
                renamed += 1
    except OSError as error:
        failed = dict(zip(map(str, temporaries), paths)).get(error.filename, error.filename)
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
