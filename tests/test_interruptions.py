"""Runs stopped from outside, as subprocesses: each signal is sent when the process reports it reached the point."""
import os
import signal
import subprocess
import sys
import threading

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


SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)


def test_runs_stopped_mid_training_by_each_signal_resume_to_the_same_losses(tmp_path):
    # The straight run and one run per signal at once, each signalled by its own thread as soon as it reports
    # epoch 2; then the three resumed at once.
    for name in ("straight", *(signum.name for signum in SIGNALS)):
        write_idx(tmp_path / name / "data" / "MNIST" / "raw")
    straight = start(ROOT / "train.py", *TRAIN, "--epochs", EPOCHS, cwd=tmp_path / "straight")
    runs = {signum: start(ROOT / "train.py", *TRAIN, "--epochs", EPOCHS, cwd=tmp_path / signum.name)
            for signum in SIGNALS}

    def stop(signum):
        wait_for(runs[signum].stdout, "Epoch 2/")
        runs[signum].send_signal(signum)

    stoppers = [threading.Thread(target=stop, args=(signum,)) for signum in SIGNALS]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join(timeout=120)
    assert straight.wait(timeout=120) == 0, straight.stderr.read()
    uninterrupted = load(tmp_path / "straight" / "ckpts" / "mnist_vae.pt")
    held = {}
    for signum, process in runs.items():
        _, stderr = process.communicate(timeout=60)
        held[signum] = len(load(tmp_path / signum.name / "ckpts" / "mnist_vae.pt")["history"])
        assert 2 <= held[signum] < int(EPOCHS)
        if signum == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == cli.INTERRUPTED
            assert stderr.startswith("stopped: VAE ") and stderr.count("\n") == 1, stderr
            assert f"ckpts/mnist_vae.pt holds epochs 1-{held[signum]}; continue with --resume" in stderr
    resumed = {signum: start(ROOT / "train.py", *TRAIN, "--epochs", EPOCHS, "--resume", cwd=tmp_path / signum.name)
               for signum in SIGNALS}
    for signum, process in resumed.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert f"resuming after epoch {held[signum]}" in stdout
        result = load(tmp_path / signum.name / "ckpts" / "mnist_vae.pt")
        assert losses(result["history"]) == losses(uninterrupted["history"]), signum.name
        for key, weight in uninterrupted["weights"].items():
            assert torch.equal(weight, result["weights"][key]), key
        assert not list((tmp_path / signum.name / "ckpts").glob(".*tmp*"))  # a killed save's temporary is cleared


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
