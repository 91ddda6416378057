"""Paired timings of a training step of Burda et al.'s network on the CPU, one thread, each against a plain form:

  loop        train.py's step (loop.train_epoch on the model and optimiser train.py builds) against a plain eager
              PyTorch loop of the same step: nn.Tanh, F.binary_cross_entropy_with_logits, fused Adam, no tricks;
  bernoulli   the project's step with speed.binary_cross_entropy against the same step with torch's own;
  denormals   the project's step with denormal floats flushed (speed.flush_denormals) against kept, on a decoder
              whose background pixels are predicted with the near certainty training reaches (their output bias at
              -88, so sigmoid(l) - x is denormal there);
  bf16        the project's step in float32 against --bf16 (bfloat16 matrix multiplies), the IWAE with k = 50.

Works take turns within each round, so a slow spell of a shared machine hits both alike; each ratio is the median
over rounds of plain / project (above 1: the project is faster), with its range.

    python -m benchmarks.speed                       # all of them on real MNIST in data/ (a few minutes)
    python -m benchmarks.speed --only loop --images 2000 --rounds 3
"""
import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import cli
import config
import data
import model as model_module
from checkpoints import build, model_args
from experiments.results import this_machine
from loop import make_optimizer, train_epoch

NETWORK = {**config.defaults(), **config.BURDA2015, "binarize": "dynamic"}  # the paper's VAE with k = 1


def project(images, batch_size, bf16=False, **change):
    """One epoch of train.py's step over `images` with the model and optimiser train.py builds."""
    cfg = argparse.Namespace(**{**NETWORK, **change})
    model = build("vae", model_args(cfg))
    optimizer = make_optimizer(model, 1e-3, images.device, cfg.adam_eps)
    return lambda: train_epoch(model, optimizer, images, batch_size, tqdm(disable=True), bf16, resample=True), model


def plain(images, batch_size):
    """The same step as anyone would write it: eager PyTorch, nothing of this project's."""
    hidden, latent = NETWORK["hidden_dims"], NETWORK["latent_dims"]
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                            nn.Linear(hidden, 2 * latent))
    decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                            nn.Linear(hidden, 784))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3, fused=True)

    def epoch():
        for batch in images[torch.randperm(len(images))].split(batch_size):
            x = torch.bernoulli(batch.flatten(1).float() / 255)
            mu, logvar = encoder(x).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(-1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
            loss = (recon + kl).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


def paired(works, rounds):
    """(seconds of each work, best of the rounds; median, lowest and highest of works[0] / works[1] by round)."""
    seconds = []
    for _ in range(rounds):
        seconds.append([])
        for work in works:
            started = time.perf_counter()
            work()
            seconds[-1].append(time.perf_counter() - started)
    ratios = [first / second for first, second in seconds]
    return [min(column) for column in zip(*seconds)], (statistics.median(ratios), min(ratios), max(ratios))


def torch_bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def patched(module, name, value, work):
    """`work` with module.name set to `value` while it runs."""
    def timed():
        kept = getattr(module, name)
        setattr(module, name, value)
        try:
            work()
        finally:
            setattr(module, name, kept)
    return timed


def with_denormals(flush, work):
    def timed():
        torch.set_flush_denormal(flush)
        try:
            work()
        finally:
            torch.set_flush_denormal(True)
    return timed


COMPARISONS = ("loop", "bernoulli", "denormals", "bf16")


@torch.no_grad()
def blank_pixels_certain(model, images):
    """Predict the background (pixels of mean intensity under 5%) as blank with a trained model's certainty:
    sigmoid(-88) = 6e-39, so
    the likelihood's gradient sigmoid(l) - x is denormal there (at -90, exp(90) overflows and it is 0)."""
    model.decoder[-1].bias[images.flatten(1).float().mean(0) < 0.05 * 255] = -88.0


def comparisons(which, images):
    """(name, batch size, the plain work, the project's work) for each comparison asked."""
    for batch_size in (20, 100):
        if "loop" in which:
            yield "loop: plain eager / train.py", batch_size, plain(images, batch_size), project(images, batch_size)[0]
        if "bernoulli" in which:
            step, _ = project(images, batch_size)
            yield "bernoulli: torch's BCE / kernel", batch_size, patched(model_module, "binary_cross_entropy",
                                                                         torch_bce, step), step
    if "denormals" in which:
        step, model = project(images, 100, objective="iwae", k=50)
        blank_pixels_certain(model, images)
        yield "denormals (IWAE, k = 50): kept / flushed", 100, with_denormals(False, step), with_denormals(True, step)
    if "bf16" in which:
        yield ("bf16 (IWAE, k = 50): float32 / --bf16", 100, project(images, 100, objective="iwae", k=50)[0],
               project(images, 100, True, objective="iwae", k=50)[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=COMPARISONS, default=COMPARISONS)
    parser.add_argument("--images", type=int, default=6000, help="training images an epoch (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default: %(default)s)")
    parser.add_argument("--data-root", type=Path, default=Path(NETWORK["data_root"]))
    parser.add_argument("--dataset", default="mnist", choices=sorted(data.DATASET_CLASSES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as every script runs on the CPU
    torch.manual_seed(0)
    images = data.load(args.dataset, args.data_root, torch.device("cpu"), "dynamic").train_images[:args.images]
    print(f"{this_machine()} (bfloat16 matrix units: {', '.join(cli.bf16_matrix_units() or ['none'])}), one thread, torch {torch.__version__}; {len(images)} {args.dataset} images an epoch, "
          f"{args.rounds} paired rounds")
    for name, batch_size, plain_work, project_work in comparisons(args.only, images):
        (plain_seconds, project_seconds), (median, lowest, highest) = paired([plain_work, project_work], args.rounds)
        steps = -(-len(images) // batch_size)
        print(f"{name}, batch {batch_size}: {1000 * plain_seconds / steps:.2f} / {1000 * project_seconds / steps:.2f}"
              f" ms a step = {median:.2f}x ({lowest:.2f}-{highest:.2f})")


if __name__ == "__main__":
    cli.run(main)
