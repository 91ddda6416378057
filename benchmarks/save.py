"""What a durable checkpoint costs: seconds per checkpoints.save() with its syncs (the file before its rename, the
folder after) against the same save with the syncs left out, for the default VAE and for Burda et al.'s, in
paired rounds, and the sync's share of a training epoch of each as train.py last measured it on this machine.

    python -m benchmarks.save                       # writes into a temporary folder (or --ckpt-dir), a minute
"""
import contextlib
import statistics
import tempfile
from unittest import mock

import torch

import checkpoints
import cli
import config
import files
from benchmarks.timing import best_of, timed_rounds
from benchmarks.works import replaced
from checkpoints import build, model_args
from loop import make_optimizer

ROUNDS = 20
# (network, seconds of a CPU training epoch at its batch size): the README's measurements on this project's machine.
NETWORKS = (("default", 1.45), ("burda2015", 3.1))


def saving(cfg, name):
    """A save() of a trained-looking checkpoint of model `name` (weights, Adam's moments, 5 epochs of history)."""
    model = build(name, model_args(cfg))
    optimizer = make_optimizer(model, cfg.learning_rate, torch.device("cpu"))
    model(torch.rand(2, 28, 28))[0].backward()
    optimizer.step()
    history = [{"epoch": epoch, "train_loss": 0.1, "test_loss": 0.1, "test_recon": 40.0, "test_kl": 3.0,
                "seconds": 1.5} for epoch in range(1, 6)]
    return lambda: checkpoints.save(cfg, "vae", model, optimizer, history)


def main():
    cfg, overrides = config.parse(("ckpt_dir",), description=__doc__)
    with contextlib.ExitStack() as stack:
        folder = cfg.ckpt_dir if "ckpt_dir" in overrides else stack.enter_context(tempfile.TemporaryDirectory())
        files.check_writable(folder, "--ckpt-dir")
        print(f"checkpoints.save() into {folder}, best and median of {ROUNDS} paired rounds")
        for network, epoch_seconds in NETWORKS:
            network_cfg = replaced(cfg, ckpt_dir=folder, **(config.BURDA2015 if network == "burda2015" else {}))
            save = saving(network_cfg, "vae")

            def unsynced():
                with mock.patch.object(files, "sync", lambda path: None):
                    save()

            rounds = timed_rounds(torch.device("cpu"), [save, unsynced], ROUNDS)
            (synced_best, unsynced_best), medians = best_of(rounds), [statistics.median(c) for c in zip(*rounds)]
            size = checkpoints.path(network_cfg, "vae").stat().st_size
            cost = medians[0] - medians[1]
            print(f"{network:>10}: {files.size_text(size)}; with syncs {1000 * synced_best:.1f} ms best, "
                  f"{1000 * medians[0]:.1f} median; without {1000 * unsynced_best:.1f} best, {1000 * medians[1]:.1f} "
                  f"median; the syncs cost {1000 * cost:.1f} ms a save, {100 * cost / epoch_seconds:.2f}% of a "
                  f"{epoch_seconds} s epoch")


if __name__ == "__main__":
    cli.run(main)
