"""The one source of truth: every default lives here, and every script reads it.

Override any value from the command line, e.g.
    python train.py --epochs 10 --latent-dims 8 --dataset fashion-mnist
The comment beside each default is its --help text.
"""
import argparse
import contextlib
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

# run
model = "both"  # which model to train/evaluate: ae | vae | both
dataset = "mnist"  # mnist | fashion-mnist
device = "auto"  # auto (cuda, else mps, else cpu) | cpu | cuda | cuda:1 | mps
seed = 1337  # seeds weights, shuffling and sampling; CPU runs repeat exactly
# optimisation
epochs = 5  # total epochs; with --resume, the epoch count to reach
batch_size = 512  # training mini-batch size
learning_rate = 3e-4  # Adam learning rate
resume = False  # continue training from the checkpoint for more epochs
compile = False  # torch.compile the model (faster on GPU after a warm-up; numbers may differ slightly)
bf16 = False  # bfloat16 autocast on CUDA (faster, changes numbers)
# model and objective
latent_dims = 2  # size of the latent code z
hidden_dims = 512  # width of the single hidden layer of encoder and decoder
likelihood = "gaussian"  # gaussian (per-pixel MSE, the reference objective) | bernoulli (binary cross-entropy)
beta = 1.0  # weight on the KL term; 1 is the ELBO
# evaluation
iw_samples = 1000  # importance samples per image for the VAE's -log p(x) bound (Burda et al. 2015)
start = 0  # visualize.py: class of the first image of the interpolation
end = 9  # visualize.py: class of the last image of the interpolation
# where things live
data_root = "data"  # datasets are read from (and downloaded to) here
ckpt_dir = "ckpts"  # checkpoints: <ckpt_dir>/<dataset>_<model>.pt
plot_dir = "plots"  # figures, GIFs and metrics: <plot_dir>/<dataset>_<model>_*.png

MODELS = ("ae", "vae")
DATASETS = ("mnist", "fashion-mnist")
LIKELIHOODS = ("gaussian", "bernoulli")
# Settings of the machine a script runs on, not of the trained model: never taken from a checkpoint.
RUNTIME_KEYS = ("device", "data_root", "ckpt_dir", "plot_dir")
# What defines a model's weights: a resumed run may not change these.
ARCHITECTURE_KEYS = ("dataset", "latent_dims", "hidden_dims", "likelihood", "beta")

_CHOICES = {"model": MODELS + ("both",), "dataset": DATASETS, "likelihood": LIKELIHOODS}
_POSITIVE = ("epochs", "batch_size", "learning_rate", "latent_dims", "hidden_dims", "iw_samples")


class UserError(Exception):
    """Something the user can fix; scripts print it as one line and exit non-zero."""


def defaults():
    """All defaults of this module as a dict, in the order they are written."""
    source = Path(__file__).read_text()
    names = re.findall(r"^([a-z_0-9]+) = ", source, flags=re.MULTILINE)
    return {name: globals()[name] for name in names}


def _help_texts():
    source = Path(__file__).read_text()
    return dict(re.findall(r"^([a-z_0-9]+) = .*?  # (.*)$", source, flags=re.MULTILINE))


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own errors already are one line; keep its usage hint off so the message is the line.
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse(keys, argv=None, description=None):
    """Parse --key value overrides of the given config keys.

    Returns (cfg, overrides): cfg holds every default with the overrides applied;
    overrides holds only what the user typed, so a script can lay it over a checkpoint's config.
    """
    values, help_texts = defaults(), _help_texts()
    parser = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for key in keys:
        default = values[key]
        flag = "--" + key.replace("_", "-")
        # SUPPRESS keeps untyped flags out of the namespace, so overrides holds only what was typed.
        common = dict(dest=key, default=argparse.SUPPRESS, help=f"{help_texts.get(key, '')} (default: {default})")
        if isinstance(default, bool):
            parser.add_argument(flag, nargs="?", const=True, type=_parse_bool, **common)
        else:
            parser.add_argument(flag, type=type(default), metavar=type(default).__name__.upper(), **common)
    overrides = vars(parser.parse_args(argv))
    validate(overrides)
    return SimpleNamespace(**{**values, **overrides}), overrides


def validate(cfg):
    """Refuse values no run can use, before any work is done."""
    for key, value in cfg.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise UserError(f"unknown {key} {value!r}: choose one of {', '.join(_CHOICES[key])}")
        if key in _POSITIVE and not value > 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive, got {value}")
        if key == "beta" and not value >= 0:
            raise UserError(f"--beta must be zero or positive, got {value}")
        if key in ("start", "end") and not 0 <= value <= 9:
            raise UserError(f"--{key} must be a class index from 0 to 9, got {value}")


def merge(stored, overrides):
    """A checkpoint's config with today's defaults for what it lacks and the user's overrides on top."""
    base = defaults()
    kept = {k: v for k, v in stored.items() if k in base and k not in RUNTIME_KEYS}
    return SimpleNamespace(**{**base, **kept, **overrides})


def resolve_device(name):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return device


def models(choice):
    return MODELS if choice == "both" else (choice,)


def checkpoint_path(cfg, model_name):
    return Path(cfg.ckpt_dir) / f"{cfg.dataset}_{model_name}.pt"


def output_path(cfg, model_name, what):
    """Where a figure, GIF or metrics file of one model goes, e.g. plots/mnist_vae_latent_space.png."""
    return Path(cfg.plot_dir) / f"{cfg.dataset}_{model_name}_{what}"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes.

    An interrupted or failed write therefore never leaves a half-written file, and the old one survives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary keeps the suffix: matplotlib and imageio pick the format from it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run(main):
    """Run a script's main(): what the user can fix is one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted: nothing was written for the unfinished work; earlier files are intact")
