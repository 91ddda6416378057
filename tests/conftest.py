"""Shared fixtures: tiny IDX datasets written by the tests, and a runner for the scripts as subprocesses."""
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One thread per process, this one and every script a test starts: the data are tiny, and the early-started commands
# (START_EARLY) run on the second core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules, under `pytest tests` as under `python -m pytest tests`

TRAIN_COUNT, TEST_COUNT = 300, 100


def pytest_collection_modifyitems(items):
    """The modules that start commands early (START_EARLY) run last, so their commands run beside the rest."""
    items.sort(key=lambda item: hasattr(item.module, "START_EARLY"))


@pytest.fixture(scope="session", autouse=True)
def started_early(request, tmp_path_factory):
    """Each long end-to-end run a selected test module names in START_EARLY ({name: start(tmp_path_factory, the
    runs started before it)}, start returning a tuple or None), started before the first test: it runs on the
    second core beside the rest of the suite, and the tests that read it wait for it. Whatever process is still
    running when the suite ends is killed with everything it started."""
    modules = {item.module for item in request.session.items if hasattr(item.module, "START_EARLY")}
    started = {}
    for module in modules:
        for name, start in module.START_EARLY.items():
            started[name] = start(tmp_path_factory, started)
    yield started
    for item in (item for entry in started.values() for item in entry or ()):
        if isinstance(item, subprocess.Popen) and item.poll() is None:
            os.killpg(item.pid, 9)
            item.communicate()


def write_idx(folder, train_count=TRAIN_COUNT, test_count=TEST_COUNT, gz=False, seed=0):
    """The four MNIST-format IDX files: 28x28 uint8 images whose brightness band depends on the class."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        labels = (torch.arange(count) % 10).to(torch.uint8)
        images = torch.randint(0, 60, (count, 28, 28), generator=generator, dtype=torch.uint8)
        for index, label in enumerate(labels.tolist()):
            images[index, 2 * label : 2 * label + 8, 4:24] = 255  # a class-dependent bar
        files = {
            f"{prefix}-images-idx3-ubyte": (0x0803, [count, 28, 28], images),
            f"{prefix}-labels-idx1-ubyte": (0x0801, [count], labels),
        }
        for name, (magic, dims, values) in files.items():
            header = b"".join(number.to_bytes(4, "big") for number in [magic, *dims])
            payload = header + values.numpy().tobytes()
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return folder


@pytest.fixture
def data_root(tmp_path):
    """A data root holding a tiny MNIST in torchvision's layout."""
    root = tmp_path / "data"
    write_idx(root / "MNIST" / "raw")
    return root


def run_python(*argv, cwd):
    """Run this Python with `argv`, no GPU visible; returns the CompletedProcess (never raises on failure)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def run_script(script, *args, cwd):
    """Run one of the project's scripts on the CPU."""
    return run_python(ROOT / script, "--device", "cpu", *args, cwd=cwd)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """A folder with tiny MNIST in data/, where train.py has run once for 1 epoch: ckpts/mnist_{ae,vae}.pt.
    Shared by every test: a test that changes files works on a `scratch` copy."""
    folder = tmp_path_factory.mktemp("run")
    write_idx(folder / "data" / "MNIST" / "raw")
    result = run_script("train.py", "--epochs", "1", "--batch-size", "64", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def scratch(workspace, tmp_path):
    """A copy of the workspace that a test may change."""
    shutil.copytree(workspace, tmp_path / "run")
    return tmp_path / "run"


def load(path):
    return torch.load(path, weights_only=True)


def run_main(module, *args):
    """Run a script's main() in this process exactly as its __main__ does: what it exits with (None: success)."""
    import cli

    argv = [f"{module.__name__}.py", "--device", "cpu", *map(str, args)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        try:
            cli.run(module.main)
        except SystemExit as exit_info:
            return exit_info.code
    return None


def full_disk(monkeypatch, free):
    """Make files.check_writable see only `free` bytes free on every file system."""
    import files

    usage = shutil.disk_usage
    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: usage(folder)._replace(free=free))


def record_syncs_and_renames(monkeypatch):
    """A list that files.sync and os.replace (as files.py calls them) append ("sync" | "replace", path) to, in
    order; the renames still happen, the syncs are skipped."""
    import files

    calls, replace = [], os.replace
    monkeypatch.setattr(files, "sync", lambda path: calls.append(("sync", Path(path))))
    monkeypatch.setattr(files.os, "replace", lambda source, target: calls.append(("replace", Path(target)))
                        or replace(source, target))
    return calls


def grid_size(columns, rows):
    """Pixel (width, height) of a plots.save_grid image: 28-pixel cells with 2-pixel borders."""
    return columns * 30 + 2, rows * 30 + 2


def png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decodes, or raises
        return image.size


def assert_clean_failure(result, *phrases):
    """A non-zero exit with a message naming each phrase, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
