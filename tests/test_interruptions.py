"""Runs stopped from outside, as subprocesses: each signal is sent when the process reports it reached the point."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import cli
from conftest import ROOT, load, run_script, write_idx

TRAIN = ("--model", "vae", "--batch-size", "64", "--hidden-dims", "32", "--device", "cpu")
EPOCHS = "20"  # tiny epochs take milliseconds each: enough of them that the signal lands mid-run


def start(*args, cwd, **options):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def wait_for(stream, text):
    for line in stream:
        if text in line:
            return
    raise AssertionError(f"never printed {text!r}")


def losses(history):
    return [(entry["train_loss"], entry["test_loss"], entry["test_kl"]) for entry in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The checkpoint of the run the interrupted ones are compared with."""
    folder = tmp_path_factory.mktemp("straight")
    write_idx(folder / "data" / "MNIST" / "raw")
    straight = run_script("train.py", *TRAIN, "--epochs", EPOCHS, cwd=folder)
    assert straight.returncode == 0, straight.stderr
    return load(folder / "ckpts" / "mnist_vae.pt")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_run_stopped_mid_training_resumes_to_the_same_losses(tmp_path, uninterrupted, signum):
    write_idx(tmp_path / "data" / "MNIST" / "raw")

    process = start(ROOT / "train.py", *TRAIN, "--epochs", EPOCHS, "--ckpt-dir", "split", cwd=tmp_path)
    wait_for(process.stdout, "Epoch 2/")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    held = len(load(tmp_path / "split" / "mnist_vae.pt")["history"])
    assert 2 <= held < int(EPOCHS)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == cli.INTERRUPTED
        assert stderr.startswith("stopped: VAE ") and stderr.count("\n") == 1, stderr
        assert f"split/mnist_vae.pt holds epochs 1-{held}; continue with --resume" in stderr

    resumed = run_script("train.py", *TRAIN, "--epochs", EPOCHS, "--ckpt-dir", "split", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {held}" in resumed.stdout
    result = load(tmp_path / "split" / "mnist_vae.pt")
    assert losses(result["history"]) == losses(uninterrupted["history"])
    for key, weight in uninterrupted["weights"].items():
        assert torch.equal(weight, result["weights"][key]), key
    assert not list((tmp_path / "split").glob(".*tmp*"))  # a killed save's temporary is cleared on the next save


def test_ctrl_c_while_torch_imports_is_one_line(tmp_path):
    # -X importtime reports each module as it is imported: the signal goes in while torch is loading.
    process = start("-X", "importtime", ROOT / "train.py", "--device", "cpu", cwd=tmp_path)
    wait_for(process.stderr, "torch")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if not line.startswith("import time:")]
    assert process.returncode == cli.INTERRUPTED
    assert lines == ["interrupted before any work began; nothing was written"]


def test_a_closed_pipe_stops_training_in_one_line_and_says_what_is_saved(tmp_path):
    write_idx(tmp_path / "data" / "MNIST" / "raw")
    process = start(ROOT / "train.py", *TRAIN, "--epochs", EPOCHS, cwd=tmp_path)  # as in `python train.py | head -n 1`
    assert process.stdout.readline().startswith("Training VAE")
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == cli.INTERRUPTED
    held = len(load(tmp_path / "ckpts" / "mnist_vae.pt")["history"])
    assert stderr == (f"stopped: standard output was closed (e.g. by `| head`); VAE: ckpts/mnist_vae.pt holds epochs "
                      f"1-{held}; continue with --resume\n")


def test_a_second_run_on_a_checkpoint_being_trained_is_refused_and_a_killed_run_holds_nothing(tmp_path):
    write_idx(tmp_path / "data" / "MNIST" / "raw")
    first = start(ROOT / "train.py", *TRAIN, "--epochs", "1000", cwd=tmp_path)
    try:
        wait_for(first.stdout, "Epoch 1/")
        second = run_script("train.py", *TRAIN, "--epochs", "2", "--overwrite", cwd=tmp_path)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        assert second.stderr == (f"error: ckpts/mnist_vae.pt is being trained by another run (process {first.pid}); "
                                 "wait for it to finish, stop it, or train elsewhere with --ckpt-dir\n")
    finally:
        first.kill()  # SIGKILL: no handler runs, the operating system drops the lock
        first.wait(timeout=60)
    held = len(load(tmp_path / "ckpts" / "mnist_vae.pt")["history"])
    resumed = run_script("train.py", *TRAIN, "--epochs", str(held + 1), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(load(tmp_path / "ckpts" / "mnist_vae.pt")["history"]) == held + 1
