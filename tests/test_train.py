"""train.py's decisions, in-process: what it refuses before any work, what it skips, what a failure leaves on disk;
"""
import contextlib
import errno
import os
import shutil
import subprocess

import pytest
import torch

import train
from conftest import assert_clean_failure, full_disk, load, run_main, run_script
from model import AutoEncoder


def run_train(folder, *args):
    return run_main(train, "--data-root", folder / "data", "--ckpt-dir", folder / "ckpts", "--batch-size", "64", *args)


def test_the_quick_start_run_twice_in_a_row_just_trains_again(scratch):
    assert run_train(scratch, "--epochs", "1") is None
    assert [entry["epoch"] for entry in load(scratch / "ckpts" / "mnist_vae.pt")["history"]] == [1]


def test_a_fresh_run_refuses_to_replace_longer_training_unless_told(scratch, capsys):
    assert run_train(scratch, "--model", "vae", "--epochs", "3") is None
    before = (scratch / "ckpts" / "mnist_vae.pt").read_bytes()
    message = run_train(scratch, "--model", "vae", "--epochs", "1")
    assert message == (f"error: {scratch / 'ckpts' / 'mnist_vae.pt'} holds 3 epochs of training, and this run would "
                       "replace it with 1: continue it with --resume --epochs N, train elsewhere with --ckpt-dir, "
                       "or pass --overwrite")
    assert (scratch / "ckpts" / "mnist_vae.pt").read_bytes() == before
    assert run_train(scratch, "--model", "vae", "--epochs", "1", "--overwrite") is None
    assert len(load(scratch / "ckpts" / "mnist_vae.pt")["history"]) == 1


def test_resume_both_skips_the_model_already_there_and_trains_the_other(scratch, capsys):
    assert run_train(scratch, "--model", "vae", "--epochs", "2", "--resume") is None
    ae_before = (scratch / "ckpts" / "mnist_ae.pt").read_bytes()
    assert run_train(scratch, "--model", "both", "--epochs", "2", "--resume") is None  # exit 0
    assert "mnist_vae.pt already holds 2 epochs: nothing to train" in capsys.readouterr().out
    assert len(load(scratch / "ckpts" / "mnist_ae.pt")["history"]) == 2
    assert (scratch / "ckpts" / "mnist_ae.pt").read_bytes() != ae_before


def test_resume_refuses_a_different_latent_size_and_keeps_the_checkpoint(scratch):
    before = (scratch / "ckpts" / "mnist_vae.pt").read_bytes()
    message = run_train(scratch, "--model", "vae", "--resume", "--epochs", "2", "--latent-dims", "3")
    assert "--latent-dims 3 (checkpoint: 2)" in message
    assert (scratch / "ckpts" / "mnist_vae.pt").read_bytes() == before


def test_resume_keeps_the_stored_model_args_over_todays_defaults(scratch):
    path = scratch / "ckpts" / "mnist_vae.pt"
    assert run_train(scratch, "--model", "vae", "--epochs", "1", "--hidden-dims", "32") is None
    checkpoint = load(path)
    checkpoint["config"].pop("hidden_dims")  # as a checkpoint of an older version might lack it
    torch.save(checkpoint, path)
    assert run_train(scratch, "--model", "vae", "--resume", "--epochs", "2") is None  # not rebuilt at 512
    assert load(path)["model_args"]["hidden_dims"] == 32 and load(path)["config"]["hidden_dims"] == 32
    assert run_train(scratch, "--model", "vae", "--resume", "--epochs", "3") is None  # and what it saved loads


@pytest.mark.parametrize("flags, advice", [
    (("--hidden-dims", 2**30), "use smaller --batch-size, --hidden-dims or --latent-dims"),
    (("--latent-dims", 2**30), "use smaller --batch-size, --hidden-dims or --latent-dims"),
    (("--objective", "iwae", "--k", 10**6), "(1000000 samples of each image), more than this machine's memory"),
    (("--objective", "iwae", "--k", 10**6), "use smaller --k, --batch-size, --hidden-dims or --latent-dims")])
def test_a_model_too_large_for_memory_is_refused_before_any_work_naming_the_flags_that_made_it(scratch, flags, advice):
    message = run_train(scratch, "--model", "vae", *flags)
    assert message.startswith("error: the VAE is too large: about ") and "GiB" in message
    assert advice in message


def test_a_checkpoint_folder_that_is_a_file_is_refused_before_training(scratch, capsys):
    (scratch / "not-a-folder").write_text("")
    for folder in (scratch / "not-a-folder", scratch / "not-a-folder" / "under"):
        message = run_main(train, "--epochs", "1", "--data-root", scratch / "data", "--ckpt-dir", folder)
        assert message.startswith(f"error: cannot write to {folder} (") and message.endswith("with --ckpt-dir")
    assert "Epoch" not in capsys.readouterr().out  # refused before the first epoch


def test_nan_loss_stops_training_and_keeps_the_old_checkpoint(scratch, monkeypatch):
    path = scratch / "ckpts" / "mnist_ae.pt"
    before = path.read_bytes()

    def nan_reconstruction(self, logits, x):
        return logits.sum(1) * float("nan")

    monkeypatch.setattr(AutoEncoder, "reconstruction_loss", nan_reconstruction)
    message = run_train(scratch, "--model", "ae", "--epochs", "1")
    assert message == (f"error: ae: the training loss became nan in epoch 1; stopped, {path} is as it was. "
                       "Try a smaller --learning-rate")
    assert path.read_bytes() == before


def test_burdas_setting_trains_and_resumes_only_in_that_setting(scratch):
    burda = ("--model", "vae", "--binarize", "dynamic", "--likelihood", "bernoulli", "--hidden-layers", "2",
             "--hidden-dims", "16", "--activation", "tanh", "--latent-dims", "5", "--ckpt-dir", scratch / "burda")
    assert run_train(scratch, *burda, "--epochs", "1") is None
    checkpoint = load(scratch / "burda" / "mnist_vae.pt")
    assert checkpoint["model_args"] == {"latent_dims": 5, "hidden_dims": 16, "hidden_layers": 2, "activation": "tanh",
                                        "likelihood": "bernoulli", "beta": 1.0, "objective": "elbo", "k": 1,
                                        "estimator": "standard", "stochastic_layers": 1, "top_latent_dims": 50,
                                        "top_hidden_dims": 100}
    assert checkpoint["config"]["binarize"] == "dynamic" and "decoder.4.weight" in checkpoint["weights"]
    message = run_train(scratch, "--model", "vae", "--binarize", "static", "--likelihood", "bernoulli", "--resume",
                        "--epochs", "2", "--ckpt-dir", scratch / "burda")
    assert "--binarize static (checkpoint: dynamic)" in message
    assert run_train(scratch, *burda, "--resume", "--epochs", "2") is None
    assert len(load(scratch / "burda" / "mnist_vae.pt")["history"]) == 2


def test_the_default_initialisation_and_beta1_train_as_before_and_the_others_are_stored_and_fixed(scratch):
    def weights(folder):
        return load(scratch / folder / "mnist_vae.pt")["weights"]

    vae = ("--model", "vae", "--epochs", "1", "--likelihood", "bernoulli", "--binarize", "dynamic")
    assert run_train(scratch, *vae, "--ckpt-dir", scratch / "default") is None
    assert run_train(scratch, *vae, "--init", "torch", "--adam-beta1", "0.9", "--ckpt-dir", scratch / "typed") is None
    default = weights("default")
    assert all(torch.equal(value, weights("typed")[key]) for key, value in default.items())
    for flags in (("--init", "glorot-mean"), ("--adam-beta1", "0.99")):
        assert run_train(scratch, *vae, *flags, "--ckpt-dir", scratch / flags[1]) is None
        assert not torch.equal(weights(flags[1])["decoder.2.bias"], default["decoder.2.bias"])
    checkpoint = load(scratch / "glorot-mean" / "mnist_vae.pt")
    assert checkpoint["config"]["init"] == "glorot-mean" and checkpoint["config"]["adam_beta1"] == 0.9
    message = run_train(scratch, *vae[:2], "--epochs", "2", "--resume", "--init", "glorot", "--ckpt-dir",
                        scratch / "glorot-mean")
    assert message.startswith("error: --resume cannot change the model of") and "--init glorot (checkpoint: glorot-mean)" in message
    assert run_train(scratch, *vae[:2], "--epochs", "2", "--resume", "--adam-beta1", "0.99", "--ckpt-dir",
                     scratch / "glorot-mean") is None
    resumed = load(scratch / "glorot-mean" / "mnist_vae.pt")
    assert resumed["optimizer"]["param_groups"][0]["betas"] == (0.99, 0.999) and len(resumed["history"]) == 2


IWAE = ("--model", "vae", "--objective", "iwae", "--k", "3", "--estimator", "dreg", "--hidden-dims", "16")


TWO_LAYERS = ("--stochastic-layers", "2", "--latent-dims", "6", "--top-latent-dims", "3", "--top-hidden-dims", "8",
              "--activation", "tanh", "--likelihood", "bernoulli", "--binarize", "dynamic")


@pytest.mark.parametrize("layers", [(), TWO_LAYERS], ids=["one stochastic layer", "two"])
def test_an_iwae_run_stopped_and_resumed_gives_the_straight_runs_history(scratch, layers):
    def losses(folder):
        checkpoint = load(scratch / folder / "mnist_vae.pt")
        return [(entry["train_loss"], entry["test_loss"]) for entry in checkpoint["history"]], checkpoint["weights"]

    assert run_train(scratch, *IWAE, *layers, "--epochs", "3", "--ckpt-dir", scratch / "straight") is None
    assert run_train(scratch, *IWAE, *layers, "--epochs", "1", "--ckpt-dir", scratch / "split") is None
    assert run_train(scratch, *IWAE, *layers, "--epochs", "3", "--ckpt-dir", scratch / "split", "--resume") is None
    (straight, straight_weights), (split, split_weights) = losses("straight"), losses("split")
    assert split == straight and len(split) == 3
    assert all(torch.equal(weight, split_weights[key]) for key, weight in straight_weights.items())
    stored = load(scratch / "split" / "mnist_vae.pt")["model_args"]
    assert stored["objective"] == "iwae" and stored["stochastic_layers"] == (2 if layers else 1)


def test_resume_refuses_another_objective_k_or_estimator_and_takes_a_new_adam_epsilon(scratch):
    assert run_train(scratch, *IWAE, "--epochs", "1", "--ckpt-dir", scratch / "iwae") is None
    for change in (("--k", "5"), ("--objective", "elbo", "--estimator", "standard"), ("--estimator", "standard")):
        message = run_train(scratch, *IWAE, *change, "--epochs", "2", "--ckpt-dir", scratch / "iwae", "--resume")
        assert message.startswith("error: --resume cannot change the model of") and f"{change[0]} " in message
    assert run_train(scratch, *IWAE, "--epochs", "2", "--ckpt-dir", scratch / "iwae", "--resume",
                     "--adam-eps", "1e-4") is None
    checkpoint = load(scratch / "iwae" / "mnist_vae.pt")
    assert [group["eps"] for group in checkpoint["optimizer"]["param_groups"]] == [1e-4]
    assert checkpoint["config"]["adam_eps"] == 1e-4


@pytest.mark.parametrize("flags, phrase", [
    (("--k", "5"), "--k 5: the objective, k, estimator and stochastic layers are the VAE's (the AE draws no samples); add --model vae"),
    (("--model", "vae", "--estimator", "dreg"), "--estimator dreg is a gradient of the importance-weighted bound"),
    (("--model", "vae", "--estimator", "stl"), "--estimator stl is a gradient of the importance-weighted bound"),
    (("--model", "vae", "--objective", "iwae", "--beta", "2"), "leave --beta at 1 with --objective iwae"),
    (("--model", "vae", "--objective", "vae"), "unknown objective 'vae': choose one of elbo, iwae"),
    (("--model", "vae", "--adam-eps", "0"), "--adam-eps must be positive, got 0.0"),
])
def test_objective_flags_that_cannot_train_are_refused_before_any_work(scratch, capsys, flags, phrase):
    message = run_train(scratch, *flags, "--epochs", "1", "--ckpt-dir", scratch / "refused")
    assert phrase in message and "\n" not in message
    assert not (scratch / "refused").exists() and "Epoch" not in capsys.readouterr().out


def test_a_folder_without_room_for_the_checkpoints_is_refused_before_the_first_epoch(scratch, capsys, monkeypatch):
    full_disk(monkeypatch, free=100_000)
    message = run_train(scratch, "--epochs", "2", "--ckpt-dir", scratch / "full")
    assert message.startswith(f"error: not enough space in {scratch / 'full'}: about ") and "100.0 kB is free" in message
    assert "Epoch" not in capsys.readouterr().out and not (scratch / "full" / "mnist_vae.pt").exists()


def no_room_for_the_lock_id(monkeypatch):
    """A disk with no block left: writing the lock's process id fails as a full file system fails it."""
    import files

    def pwrite(descriptor, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "pwrite", pwrite)
    full_disk(monkeypatch, free=0)


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_disk_too_full_for_the_lock_is_the_room_refusal_before_any_epoch(scratch, capsys, monkeypatch, resume):
    checkpoint = scratch / "ckpts" / "mnist_vae.pt"
    before = checkpoint.read_bytes()
    no_room_for_the_lock_id(monkeypatch)
    folder = scratch / "ckpts" if resume else scratch / "full"
    message = run_train(scratch, "--model", "vae", "--epochs", "2", "--ckpt-dir", folder, *["--resume"] * resume)
    assert message.startswith(f"error: not enough space in {folder}: about ") and "0 bytes is free" in message
    assert "Epoch" not in capsys.readouterr().out and checkpoint.read_bytes() == before
    assert not (scratch / "full" / "mnist_vae.pt").exists()


@pytest.fixture
def full_tmpfs(tmp_path):
    """A real 32 MB file system with no block left (root mounts one; elsewhere the test is skipped); yields a
    function that copies a file in before it is filled."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mount_point], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], capture_output=True)


def fill(folder):
    with open(folder / "fill", "wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(bytes(4096))
    assert shutil.disk_usage(folder).free < 4096


def test_a_full_tmpfs_is_the_room_refusal_fresh_and_resumed_and_keeps_the_checkpoint(scratch, full_tmpfs):
    resumed = full_tmpfs / "resumed"
    resumed.mkdir()
    shutil.copy(scratch / "ckpts" / "mnist_vae.pt", resumed)
    before = (resumed / "mnist_vae.pt").read_bytes()
    fill(full_tmpfs)
    flags = ("--model", "vae", "--data-root", scratch / "data", "--batch-size", "64", "--epochs", "2")
    for folder, extra in ((full_tmpfs / "fresh", ()), (resumed, ("--resume",))):
        result = run_script("train.py", *flags, "--ckpt-dir", folder, *extra, cwd=scratch)
        assert_clean_failure(result, f"error: not enough space in {folder}: about ")
        assert result.stderr.count("\n") == 1 and "Epoch" not in result.stdout
    assert (resumed / "mnist_vae.pt").read_bytes() == before
    assert not (full_tmpfs / "fresh" / "mnist_vae.pt").exists()
