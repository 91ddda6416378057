"""The gradients' signal-to-noise ratio against k: why the IWAE's inference network learns worse as k grows
(Rainforth et al. 2018, arXiv 1802.04537) and why DReG turns that round (Tucker et al. 2018, arXiv 1810.04152),
measured on a trained VAE for the standard, STL and DReG estimators, or on a Gaussian model whose answer is known.

    python -m experiments.snr runs/burda2015/iwae-k50-batch100-eps1e-08/stage4     # a stage of the table's runs
    python -m experiments.snr ckpts --ks 1 10 100 --draws 40                        # any VAE checkpoint folder
    python -m experiments.snr --control 0.01 --draws 1000                           # the positive control

For each estimator and k, --draws gradients of the negative IWAE bound on the same test images (the first --images
of the test set, binarised as the model was trained), each with fresh samples of z: the samples are the only
randomness, and every estimator at a k sees the same ones. Of each network's gradient: Rainforth et al.'s mean SNR
over parameters, its signal and noise and their ratio (gradient_figures), each ± its spread over --groups
independent groups of draws, and the weights' effective sample size. The rows go to results/snr.csv (a new
measurement of a checkpoint replaces its rows) and the figure and docs/snr.md's tables are redrawn from it.
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import argparse
import datetime
import math
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm import tqdm

import checkpoints
import data
import speed
from cli import UserError
from experiments import pages, results, snr_data
from files import atomic_path
from literature import HELD_IN_LOG_Q, LogWeights, negative_iwae_bound, network_parameters, reweighted
from model import PIXELS, reparameterise

ESTIMATORS = ("standard", "stl", "dreg")
# Bytes a sample of z costs in one draw's forward and backward pass, per pixel and per hidden unit: a bound for the
# refusal of a grid that cannot fit, generous on purpose.
BYTES_PER_PIXEL, BYTES_PER_UNIT = 24, 32


class Moments:
    """Running sums of draws of a vector and of their squares, in float64, draw i in group i % groups."""

    def __init__(self, size, groups):
        self.sums = torch.zeros(groups, 2, size, dtype=torch.float64)  # (group, [sum, sum of squares], entry)
        self.counts = [0] * groups

    def add(self, draw):
        group = sum(self.counts) % len(self.counts)
        draw = draw.double()
        self.sums[group, 0] += draw
        self.sums[group, 1] += draw.square()
        self.counts[group] += 1

    def varying(self):
        """How many entries vary over the draws: those the mean SNR averages."""
        return int((variance(*self.sums.sum(0), sum(self.counts)) > 0).sum())

    def figures(self):
        """{figure: (its value over all draws, its standard error)} for gradient_figures' figures, the error from
        their spread over the independent groups of draws (sd / sqrt(groups))."""
        total = gradient_figures(*self.sums.sum(0), sum(self.counts))
        by_group = torch.tensor([list(gradient_figures(*sums, count).values())
                                 for sums, count in zip(self.sums, self.counts)])  # (groups, figures)
        errors = by_group.std(0) / math.sqrt(len(by_group))
        return {name: (value, error) for (name, value), error in zip(total.items(), errors.tolist())}


def variance(sums, squares, count):
    """Each entry's variance over `count` draws (Bessel's correction) from the sums of the draws and their squares."""
    return ((squares - sums * sums / count) / (count - 1)).clamp_min(0)


def gradient_figures(sums, squares, count):
    """From the sums of `count` draws of a gradient g and of their squares: snr, Rainforth et al.'s summary, the mean
    over entries of |mean| / sd (entries that never vary left out); noise, sqrt(tr Cov g); signal, |E g|, from
    |mean|^2 less its noise share tr Cov g / count (unbiased before the root); vector_snr, signal / noise, which has
    no floor where snr reads about 0.8 / sqrt(count) for a gradient of mean 0."""
    mean, variance_ = sums / count, variance(sums, squares, count)
    varies = variance_ > 0
    signal, noise = (mean.square().sum() - variance_.sum() / count).clamp_min(0).sqrt(), variance_.sum().sqrt()
    return {"snr": (mean.abs()[varies] / variance_[varies].sqrt()).mean().item(), "vector_snr": (signal / noise).item(),
            "signal": signal.item(), "noise": noise.item()}


def measure(model, images, k, estimator, draws, groups, seed, progress=None):
    """({network: Moments}, the mean effective sample size / k) of `draws` gradients of the negative IWAE bound per
    image with k samples under `estimator` on `images`; ESS = 1 / sum_i w~_i^2 of the normalised weights."""
    networks = network_parameters(model)
    moments = {name: Moments(sum(p.numel() for p in parameters), groups) for name, parameters in networks.items()}
    torch.manual_seed(seed)  # every estimator at this k draws the same samples of z
    ess = 0.0
    for _ in range(draws):
        model.zero_grad(set_to_none=True)
        weights = model.log_weights(images, k, estimator)
        log_weights = weights.latent - weights.recon  # (B, k)
        negative_iwae_bound(log_weights).mean().backward()
        ess += (1 / torch.softmax(log_weights.detach(), -1).square().sum(-1)).mean().item() / k
        for name, parameters in networks.items():
            moments[name].add(torch.cat([parameter.grad.flatten() for parameter in parameters]))
        if progress is not None:
            progress.update(k)
    return moments, ess / draws


class LinearGaussian(torch.nn.Module):
    """The positive control, where the answer is known (Rainforth et al. 2018, Section 4): p(z) = N(prior_mean, I),
    p(x|z) = N(z, I) and q(z|x) = N(encoder(x), 2/3 I) in 20 dimensions, x drawn from the model. The posterior is
    N((prior_mean + x) / 2, I / 2); the parameters sit at the bound's optimum (encoder weight I/2, bias the true
    mean / 2) nudged by N(0, nudge^2), so the gradients' means are small but not zero."""

    def __init__(self, nudge, images, seed, dims=20):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        truth = torch.randn(dims, generator=generator)
        self.images = truth + math.sqrt(2) * torch.randn(images, dims, generator=generator)  # x ~ p(x) = N(truth, 2I)
        self.encoder = torch.nn.Linear(dims, dims)
        self.prior_mean = torch.nn.Parameter(truth + nudge * torch.randn(dims, generator=generator))
        with torch.no_grad():
            self.encoder.weight.copy_(torch.eye(dims) / 2 + nudge * torch.randn(dims, dims, generator=generator))
            self.encoder.bias.copy_(truth / 2 + nudge * torch.randn(dims, generator=generator))

    def log_weights(self, x, k, estimator="standard"):
        """LogWeights as the VAEs' (literature.KSampleVAE.log_weights), the Gaussians' log 2 pi terms left out."""
        mean = self.encoder(x)  # (B, dims)
        logvar = torch.full_like(mean, math.log(2 / 3))
        z, noise = reparameterise(mean, logvar, k)  # (B, k, dims) each
        if estimator in HELD_IN_LOG_Q:  # q's mean held inside log q: (z - mu) / std with mu fixed
            noise = (z - mean.detach()[:, None]) * math.sqrt(3 / 2)
        recon = 0.5 * (x[:, None] - z).square().sum(-1)  # -log p(x|z), (B, k)
        latent = 0.5 * (noise.square() - (z - self.prior_mean).square() + logvar[:, None]).sum(-1)  # log p(z) - log q
        if estimator == "dreg":
            reweighted(latent - recon, z)
        return LogWeights(recon, latent, -latent.mean(1))


def arguments():
    parser = argparse.ArgumentParser(prog="python -m experiments.snr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt_dir", type=Path, nargs="?", help="the folder holding the VAE's checkpoint (mnist_vae.pt)")
    parser.add_argument("--control", type=float, metavar="NUDGE",
                        help="measure the Gaussian positive control instead, its parameters this far from the optimum")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 50, 100, 500, 1000], metavar="K",
                        help="the k of the grid (default: %(default)s)")
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS),
                        help="the encoder gradients measured (default: all three)")
    parser.add_argument("--draws", type=int, default=100,
                        help="gradient draws per estimator and k (default: %(default)s)")
    parser.add_argument("--images", type=int, default=20,
                        help="test images in every draw's batch (default: %(default)s)")
    parser.add_argument("--groups", type=int, default=10,
                        help="groups of draws for the jackknife standard error (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the samples of z (default: 1)")
    parser.add_argument("--data-root", default="data", help="MNIST is read from here (default: data)")
    parser.add_argument("--results", type=Path, default=snr_data.DATA,
                        help="the data the figures go to (default: the repo's, whose rows redraw the pages; any "
                             "other's figure is drawn beside it, as a .png)")
    return parser


def check(args, model):
    """Refuse, before any work, a grid that means nothing or cannot fit in memory."""
    if min(args.ks) < 1 or args.draws < 2 or args.images < 1 or args.seed < 0:
        raise UserError("--ks and --images must be at least 1, --draws at least 2 and --seed not negative")
    if not 2 <= args.groups <= args.draws // 2:  # each group's own figures need two draws
        raise UserError(f"--groups must lie between 2 and half of --draws ({args.draws}), got {args.groups}")
    units = sum(layer.out_features for layer in model.modules() if isinstance(layer, torch.nn.Linear))
    needed = max(args.ks) * args.images * (PIXELS * BYTES_PER_PIXEL + units * BYTES_PER_UNIT)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available / 2:
        raise UserError(f"k = {max(args.ks)} with {args.images} images needs about {needed / 2**30:.0f} GiB, more "
                        f"than half this machine's {available / 2**30:.0f} GiB: use a smaller --ks or --images")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = arguments().parse_args(argv)
    command = shlex.join(["python", "-m", "experiments.snr", *argv])  # exactly what measured these rows
    if (args.ckpt_dir is None) == (args.control is None) or (args.control is not None and not args.control > 0):
        raise UserError("name a VAE's checkpoint folder (python train.py --model vae, or python -m experiments.burda2015,"
                        " writes one), or measure the Gaussian control alone with a positive --control")
    snr_data.read(args.results)  # damaged data is refused before the work
    if args.control is None:
        model, checkpoint, stored = checkpoints.load(SimpleNamespace(ckpt_dir=args.ckpt_dir, dataset="mnist"), "vae",
                                                     {}, torch.device("cpu"), needs=("history",))
        check(args, model)
        speed.flush_denormals()
        dataset = data.load(stored.dataset, args.data_root, torch.device("cpu"), stored.binarize)
        images = data.to_float(dataset.test_images[: args.images])  # (images, 28, 28)
        trained = results.trained_row(checkpoint, stored, results.stage_of(args.ckpt_dir))
        name = snr_data.checkpoint_name(trained)
        trained_by = results.command(trained) if trained["stage"] is not None else ""  # a stage of the table's runs
        stage, epochs = trained["stage"], trained["epochs"]
    else:
        model = LinearGaussian(args.control, args.images, args.seed)
        check(args, model)
        images, name, trained_by, stage, epochs = model.images, snr_data.control_name(args.control), "", None, 0
    rows, grid = [], [(estimator, k) for estimator in args.estimators for k in sorted(set(args.ks))]
    with tqdm(total=sum(k for _, k in grid) * args.draws, unit="sample", unit_scale=True, desc="gradient draws",
              disable=None) as progress:
        for estimator, k in grid:
            progress.set_postfix_str(f"{estimator}, k = {k}")
            moments, ess_per_k = measure(model, images, k, estimator, args.draws, args.groups, args.seed, progress)
            for network, figures in ((network, moments.figures()) for network, moments in moments.items()):
                rows.append({"checkpoint": name, "trained_by": trained_by, "stage": stage, "epochs": epochs,
                             "estimator": estimator, "network": network, "k": k,
                             **{key: figures[figure][index] for figure in snr_data.FIGURES
                                for index, key in enumerate((figure, f"{figure}_se"))},
                             "ess_per_k": ess_per_k, "parameters": moments[network].varying(),
                             "images": args.images, "draws": args.draws, "seed": args.seed,
                             "machine": results.this_machine(), "date": datetime.date.today().isoformat(),
                             "command": command})
                with progress.external_write_mode():  # a line per point above the bar, at once in a log too
                    print(f"{estimator:>8}, k = {k:>4}, {network:>10} network: SNR {figures['snr'][0]:.4f}, signal "
                          f"{figures['signal'][0]:.4g}, noise {figures['noise'][0]:.4g}, ESS/k {ess_per_k:.3f}",
                          flush=True)
    snr_data.replace(rows, args.results)
    if args.results.resolve() == snr_data.DATA.resolve():
        print(f"wrote {len(rows)} rows to {args.results}")
        pages.main()
    else:  # data of its own: its figure beside it
        with atomic_path(args.results.with_suffix(".png")) as temporary:
            snr_data.figure(snr_data.read(args.results), temporary)
        print(f"wrote {len(rows)} rows to {args.results} and its figure {args.results.with_suffix('.png')}")


if __name__ == "__main__":
    cli.run(main)
