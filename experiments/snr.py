"""The gradients' signal-to-noise ratio against k: why the IWAE's inference network learns worse as k grows
(Rainforth et al. 2018, arXiv 1802.04537) and why DReG turns that round (Tucker et al. 2018, arXiv 1810.04152),
measured on a trained VAE for the standard, STL and DReG estimators.

    python -m experiments.snr runs/burda2015/iwae-k50-batch100-eps1e-08/stage4     # a stage of the table's runs
    python -m experiments.snr ckpts --ks 1 10 100 --draws 40                        # any VAE checkpoint folder

For each estimator and k, --draws gradients of the IWAE loss on the same test images (the first --images of the
test set, binarised as the model was trained), each with fresh samples of z: the samples are the only randomness,
and every estimator at a k sees the same ones. A parameter's SNR is |mean| / standard deviation over the draws
(Rainforth et al.'s definition); a network's figure is the mean of its parameters' SNRs, as they summarise it, ± a
jackknife standard error over --groups groups of draws. The figures go to results/snr.csv (a new measurement of a
checkpoint replaces its rows) and the figure and docs/snr.md's tables are redrawn from it.
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import argparse
import datetime
import math
import os
import shlex
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
from literature import network_parameters
from model import PIXELS

ESTIMATORS = ("standard", "stl", "dreg")
DEFAULTS = {"ks": [1, 5, 10, 50, 100, 500, 1000], "estimators": list(ESTIMATORS), "draws": 100, "images": 20,
            "groups": 10, "seed": 1}
# Bytes a sample of z costs in one draw's forward and backward pass, per pixel and per hidden unit: a bound for the
# refusal of a grid that cannot fit, generous on purpose.
BYTES_PER_PIXEL, BYTES_PER_UNIT = 24, 32


class Moments:
    """Running sums of draws of a vector and of their squares, in float64, draw i in group i % groups: enough for
    each entry's mean and standard deviation over the draws, with the groups left out one at a time (jackknife)."""

    def __init__(self, size, groups):
        self.sums = torch.zeros(groups, 2, size, dtype=torch.float64)  # (group, [sum, sum of squares], entry)
        self.counts = [0] * groups

    def add(self, draw):
        group = sum(self.counts) % len(self.counts)
        draw = draw.double()
        self.sums[group, 0] += draw
        self.sums[group, 1] += draw.square()
        self.counts[group] += 1

    def snr(self):
        """(the mean over entries of |mean| / sd, its jackknife standard error, the entries it averages): entries
        whose draws never vary (sd 0) are left out."""
        total, count = self.sums.sum(0), sum(self.counts)
        value, entries = mean_snr(total[0], total[1], count)
        left_out = [mean_snr(*(total - self.sums[group]), count - self.counts[group])[0]
                    for group in range(len(self.counts))]
        spread = sum((figure - sum(left_out) / len(left_out)) ** 2 for figure in left_out)
        return value, math.sqrt((len(left_out) - 1) / len(left_out) * spread), entries


def mean_snr(sums, squares, count):
    """(the mean over entries of |mean| / sd, the entries with sd > 0) from the sums of `count` draws and of their
    squares; sd with Bessel's correction."""
    mean = sums / count
    deviation = ((squares - sums * mean) / (count - 1)).clamp_min(0).sqrt()
    varies = deviation > 0
    return (mean.abs()[varies] / deviation[varies]).mean().item(), int(varies.sum())


def measure(model, images, k, estimator, draws, groups, seed, progress=None):
    """{network: Moments} of `draws` gradients of the IWAE loss with k samples under `estimator` on `images`."""
    model.objective, model.k, model.estimator = "iwae", k, estimator
    networks = network_parameters(model)
    moments = {name: Moments(sum(p.numel() for p in parameters), groups) for name, parameters in networks.items()}
    torch.manual_seed(seed)  # every estimator at this k draws the same samples of z
    for _ in range(draws):
        model.zero_grad(set_to_none=True)
        model(images)[0].backward()
        for name, parameters in networks.items():
            moments[name].add(torch.cat([parameter.grad.flatten() for parameter in parameters]))
        if progress is not None:
            progress.update(k)
    return moments


def arguments():
    parser = argparse.ArgumentParser(prog="python -m experiments.snr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt_dir", type=Path, help="the folder holding the VAE's checkpoint (mnist_vae.pt)")
    parser.add_argument("--ks", type=int, nargs="+", default=DEFAULTS["ks"], metavar="K",
                        help="the k of the grid (default: %(default)s)")
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=DEFAULTS["estimators"],
                        help="the encoder gradients measured (default: all three)")
    parser.add_argument("--draws", type=int, default=DEFAULTS["draws"],
                        help="gradient draws per estimator and k (default: %(default)s)")
    parser.add_argument("--images", type=int, default=DEFAULTS["images"],
                        help="test images in every draw's batch (default: %(default)s)")
    parser.add_argument("--groups", type=int, default=DEFAULTS["groups"],
                        help="groups of draws for the jackknife standard error (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seeds the samples of z (default: 1)")
    parser.add_argument("--data-root", default="data", help="MNIST is read from here (default: data)")
    parser.add_argument("--results", type=Path, default=snr_data.DATA,
                        help="the data the figures go to (default: the repo's, whose rows redraw the pages; any "
                             "other's figure is drawn beside it, as a .png)")
    return parser


def check(args, model):
    """Refuse, before any work, a grid that means nothing or cannot fit in memory."""
    if min(args.ks) < 1 or args.draws < 2 or args.images < 1 or args.seed < 0:
        raise UserError("--ks and --images must be at least 1, --draws at least 2 and --seed not negative")
    if not 2 <= args.groups <= args.draws:
        raise UserError(f"--groups must lie between 2 and --draws ({args.draws}), got {args.groups}")
    units = sum(layer.out_features for layer in model.modules() if isinstance(layer, torch.nn.Linear))
    needed = max(args.ks) * args.images * (PIXELS * BYTES_PER_PIXEL + units * BYTES_PER_UNIT)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available / 2:
        raise UserError(f"k = {max(args.ks)} with {args.images} images needs about {needed / 2**30:.0f} GiB, more "
                        f"than half this machine's {available / 2**30:.0f} GiB: use a smaller --ks or --images")


def command(args):
    """The command that measures exactly these rows: the folder and every setting that is not the default."""
    flags = [f"--{key.replace('_', '-')} {' '.join(map(str, value)) if isinstance(value, list) else value}"
             for key, value in vars(args).items() if key in DEFAULTS and value != DEFAULTS[key]]
    return " ".join(["python -m experiments.snr", shlex.quote(str(args.ckpt_dir)), *flags])


def main(argv=None):
    args = arguments().parse_args(argv)
    if not (args.ckpt_dir / "mnist_vae.pt").is_file():
        raise UserError(f"no VAE checkpoint at {args.ckpt_dir / 'mnist_vae.pt'}: train one (python train.py --model "
                        "vae, or python -m experiments.burda2015) and name its folder")
    snr_data.read(args.results)  # damaged data is refused before the work
    model, checkpoint, stored = checkpoints.load(SimpleNamespace(ckpt_dir=args.ckpt_dir, dataset="mnist"), "vae", {},
                                                 torch.device("cpu"), needs=("history",))
    check(args, model)
    speed.flush_denormals()
    dataset = data.load(stored.dataset, args.data_root, torch.device("cpu"), stored.binarize)
    images = data.to_float(dataset.test_images[: args.images])  # (images, 28, 28)
    trained = results.trained_row(checkpoint, stored, results.stage_of(args.ckpt_dir))
    trained_by = results.command(trained) if trained["stage"] is not None else ""  # a stage of the table's runs
    rows, grid = [], [(estimator, k) for estimator in args.estimators for k in sorted(set(args.ks))]
    with tqdm(total=sum(k for _, k in grid) * args.draws, unit="sample", unit_scale=True, desc="gradient draws",
              disable=None) as progress:
        for estimator, k in grid:
            progress.set_postfix_str(f"{estimator}, k = {k}")
            for network, moments in measure(model, images, k, estimator, args.draws, args.groups, args.seed,
                                            progress).items():
                value, error, parameters = moments.snr()
                rows.append({"checkpoint": snr_data.checkpoint_name(trained), "trained_by": trained_by,
                             "stage": trained["stage"], "epochs": trained["epochs"], "estimator": estimator,
                             "network": network, "k": k, "snr": value, "snr_se": error, "parameters": parameters,
                             "images": args.images, "draws": args.draws, "seed": args.seed,
                             "machine": results.this_machine(), "date": datetime.date.today().isoformat(),
                             "command": command(args)})
                with progress.external_write_mode():  # a line per point above the bar, at once in a log too
                    print(f"{estimator:>8}, k = {k:>4}, {network:>10} network: SNR {value:.4f} ± {error:.4f}",
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
