import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import files
from cli import UserError
from conftest import full_disk, record_syncs_and_renames
from files import atomic_path, atomic_paths


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]


def no_space(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_a_full_disk_leaves_the_whole_old_set_and_names_the_file(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.json"]
    for path in paths:
        path.write_text("old")
    with pytest.raises(UserError) as error:
        with atomic_paths(paths) as temporaries:
            temporaries[0].write_text("new")
            no_space(temporaries[1])  # the second file of the set does not fit
    assert str(error.value) == (f"could not write {paths[1]} (No space left on device); "
                                f"not updated: {paths[0]}, {paths[1]}, {paths[2]}")
    assert [path.read_text() for path in paths] == ["old"] * 3
    assert sorted(tmp_path.iterdir()) == sorted(paths)


def test_a_rename_that_fails_midway_names_what_was_not_updated(tmp_path, monkeypatch):
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    replace, calls = os.replace, []

    def second_fails(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(source))
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", second_fails)
    with pytest.raises(UserError, match=f"not updated: {paths[1]}$"):
        with atomic_paths(paths) as temporaries:
            for temporary in temporaries:
                temporary.write_text("new")
    assert paths[0].read_text() == "new" and not paths[1].exists() and sorted(tmp_path.iterdir()) == [paths[0]]


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its process id now belongs to no process
    stale = tmp_path / f".model.{dead.pid}.tmp.pt"
    live = tmp_path / f".model.{os.getppid()}.tmp.pt"  # a writer still running keeps its temporary
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    with atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"new")
    assert sorted(tmp_path.iterdir()) == sorted([live, tmp_path / "model.pt"])


@pytest.mark.parametrize("where", ["file", "file/under"])
def test_check_writable_refuses_a_folder_that_cannot_be(tmp_path, where):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=f"cannot write to {tmp_path / where} \\(.+\\); choose another folder with --plot-dir"):
        files.check_writable(tmp_path / where, "--plot-dir")
    files.check_writable(tmp_path / "new" / "folder", "--plot-dir")
    assert list((tmp_path / "new" / "folder").iterdir()) == []  # created, and the probe is gone


def test_a_write_that_fails_through_an_open_file_names_the_file_it_was_writing(tmp_path):
    """A full disk mid-write raises from the open file, and such errors carry no file name (error.filename is None)."""
    paths = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.json"]
    with pytest.raises(UserError) as error:
        with atomic_paths(paths) as temporaries:
            temporaries[0].write_text("new")
            with open(temporaries[1], "w") as stream:
                stream.write("half")
                stream.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(error.value).startswith(f"could not write {paths[1]} (No space left on device); not updated: ")
    assert "None" not in str(error.value)


def test_a_set_is_synced_file_by_file_before_its_renames_and_its_folders_after(tmp_path, monkeypatch):
    paths = [tmp_path / "a.png", tmp_path / "sub" / "b.png", tmp_path / "c.json"]
    calls = record_syncs_and_renames(monkeypatch)
    with atomic_paths(paths) as temporaries:
        for temporary in temporaries:
            temporary.write_text("new")
    assert calls == ([("sync", temporary) for temporary in temporaries] + [("replace", path) for path in paths]
                     + [("sync", tmp_path), ("sync", tmp_path / "sub")])
    assert [path.read_text() for path in paths] == ["new"] * 3


def test_sync_flushes_a_real_file_and_a_real_folder(tmp_path):
    (tmp_path / "file").write_text("data")
    files.sync(tmp_path / "file")  # raises if the descriptor cannot be synced
    files.sync(tmp_path)


def test_check_writable_refuses_a_folder_without_the_space_needed(tmp_path, monkeypatch):
    full_disk(monkeypatch, free=1_500_000)
    with pytest.raises(UserError) as error:
        files.check_writable(tmp_path, "--ckpt-dir", needed=9_800_000)
    assert str(error.value) == (f"not enough space in {tmp_path}: about 9.8 MB is needed, 1.5 MB is free; free some "
                                "space or choose another folder with --ckpt-dir")
    files.check_writable(tmp_path, "--ckpt-dir", needed=1_000_000)


def test_a_lock_is_refused_to_a_second_holder_and_freed_when_its_holder_is_killed(tmp_path):
    lock = tmp_path / ".model.pt.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); import files\n"
                               "with files.exclusive_lock(sys.argv[2]):\n    print('held', flush=True); time.sleep(60)",
                               str(Path(files.__file__).parent), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(files.LockHeld) as held:
            with files.exclusive_lock(lock):
                pass
        assert held.value.holder == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    with files.exclusive_lock(lock):  # the killed holder's lock went with it
        assert lock.read_text() == f"{os.getpid()}\n"
