"""The one source of truth: every default lives here, and every script reads it.

Override any value from the command line, e.g.
    python train.py --epochs 10 --latent-dims 8 --dataset fashion-mnist
Each default is written `name: "its --help text" = value`: the annotation is the help, so the two never drift apart.
"""
import argparse
import inspect
import sys
from types import SimpleNamespace

from cli import UserError

# run
model: "which model to train/evaluate: ae | vae | both" = "both"
dataset: "mnist | fashion-mnist" = "mnist"
device: "auto (cuda, else mps, else cpu) | cpu | cuda | cuda:1 | mps" = "auto"
seed: "seeds weights, shuffling and sampling; CPU runs repeat exactly" = 1337
# optimisation
epochs: "total epochs; with --resume, the epoch count to reach" = 5
batch_size: "training mini-batch size" = 512
learning_rate: "Adam learning rate" = 3e-4
adam_eps: "Adam's epsilon; Burda et al.'s 1e-4 on a loss per image is 1.2755e-07 on this per-pixel loss" = 1e-8
adam_beta1: "Adam's beta1, the decay of its average gradient (the paper's 0.9; Burda et al.'s code: 0.99)" = 0.9
init: ("torch (nn.Linear's) | glorot (Glorot-uniform weights) | glorot-mean (and the decoder's output bias at the "
       "logit of the mean pixel: Burda et al.'s code)") = "torch"
resume: "continue training from the checkpoint for more epochs" = False
overwrite: "let a fresh run replace a checkpoint that holds more epochs than it will train" = False
compile: "torch.compile the model (not measured faster for these MLPs; numbers differ slightly)" = False
bf16: ("the networks' matrix multiplies in bfloat16, the rest float32: faster only with bfloat16 matrix units "
       "(docs/performance.md); changes the numbers slightly") = False
# model and objective
latent_dims: "size of the latent code z (with two stochastic layers: of z1, the lower)" = 2
hidden_dims: "width of each hidden layer of encoder and decoder" = 512
hidden_layers: "hidden layers in encoder and in decoder (Burda et al. 2015: 2 of 200)" = 1
activation: "relu | tanh (Burda et al. 2015 used tanh)" = "relu"
likelihood: "gaussian (per-pixel MSE, the reference objective) | bernoulli (binary cross-entropy)" = "gaussian"
beta: "weight on the KL term; 1 is the ELBO" = 1.0
binarize: "none | dynamic (training pixels redrawn each batch) | static: binarised data, for --likelihood bernoulli" = "none"
objective: "the VAE's training objective: elbo | iwae (the importance-weighted bound, Burda et al. 2015)" = "elbo"
k: "samples of z per image in the VAE's training objective (Burda et al.'s k)" = 1
stochastic_layers: "the VAE's stochastic layers: 1 (z) | 2 (Burda et al. 2015: z1 of --latent-dims, z2 above it)" = 1
top_latent_dims: "with --stochastic-layers 2: size of the top stochastic layer z2 (Burda et al.: 50)" = 50
top_hidden_dims: "with --stochastic-layers 2: width of q(z2|z1)'s and p(z1|z2)'s hidden layers (Burda et al.: 100)" = 100
estimator: ("the IWAE's encoder gradient: standard | dreg (Tucker et al. 2018) | stl (sticking the landing, Roeder et "
            "al. 2017; biased for k > 1)") = "standard"
# evaluation
iw_samples: "importance samples per image for the VAE's -log p(x) bound (Burda et al. 2015)" = 1000
start: "visualize.py: class of the first image of the interpolation" = 0
end: "visualize.py: class of the last image of the interpolation" = 9
# where things live
data_root: "datasets are read from (and downloaded to) here" = "data"
ckpt_dir: "checkpoints: <ckpt_dir>/<dataset>_<model>.pt" = "ckpts"
plot_dir: "figures, GIFs and metrics: <plot_dir>/<dataset>_<model>_*.png" = "plots"

# The VAE of Burda, Grosse & Salakhutdinov (2015), Table 1, one stochastic layer: what experiments.burda2015 trains.
BURDA2015 = {"hidden_layers": 2, "hidden_dims": 200, "activation": "tanh", "latent_dims": 50,
             "likelihood": "bernoulli", "binarize": "dynamic"}
# Their two stochastic layers (Appendix C): z1 of 100 units from BURDA2015's networks, z2 of 50 from two tanh layers
# of 100 each way.
BURDA2015_TWO_LAYERS = {**BURDA2015, "latent_dims": 100, "stochastic_layers": 2, "top_latent_dims": 50,
                        "top_hidden_dims": 100}

MODELS = ("ae", "vae")
# What defines a model: a checkpoint stores these, and each model class takes those it uses.
MODEL_ARGS = ("latent_dims", "hidden_dims", "hidden_layers", "activation", "likelihood", "beta", "objective", "k",
              "estimator", "stochastic_layers", "top_latent_dims", "top_hidden_dims")
# Settings of the machine a script runs on, not of the trained model: never taken from a checkpoint.
RUNTIME_KEYS = ("device", "data_root", "ckpt_dir", "plot_dir")

_CHOICES = {"model": MODELS + ("both",), "dataset": ("mnist", "fashion-mnist"), "likelihood": ("gaussian", "bernoulli"),
            "binarize": ("none", "dynamic", "static"), "activation": ("relu", "tanh"), "objective": ("elbo", "iwae"),
            "estimator": ("standard", "dreg", "stl"), "init": ("torch", "glorot", "glorot-mean"),
            "stochastic_layers": (1, 2)}
_POSITIVE = ("epochs", "batch_size", "learning_rate", "adam_eps", "latent_dims", "hidden_dims", "hidden_layers", "k",
             "iw_samples", "top_latent_dims", "top_hidden_dims")
# Beyond these no run finishes (epochs) or torch's indices overflow; what fits in memory is checked by train.py.
_AT_MOST = {"epochs": 10**6, "batch_size": 2**31 - 1, "latent_dims": 2**31 - 1, "hidden_dims": 2**31 - 1,
            "hidden_layers": 1000, "k": 2**31 - 1, "top_latent_dims": 2**31 - 1, "top_hidden_dims": 2**31 - 1,
            "iw_samples": 2**31 - 1, "seed": 2**64 - 1}


def help_texts():  # every default's name -> its --help text, in the order they are written
    return inspect.get_annotations(sys.modules[__name__])


def defaults():  # every default's name -> its value
    return {name: globals()[name] for name in help_texts()}


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


def parse(keys, argv=None, description=None, script_defaults=None, prog=None, parents=()):
    """(cfg, overrides) from --key value flags of `keys`: cfg every default with the overrides applied, overrides
    only what was typed (a script lays it over a checkpoint's config). script_defaults replace this module's for one
    script; parents (add_help=False parsers) add a command's own arguments, whose values land in overrides too."""
    values, help_text = {**defaults(), **(script_defaults or {})}, help_texts()
    parser = _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                     parents=list(parents))
    for key in keys:
        default = values[key]
        flag = "--" + key.replace("_", "-")
        # SUPPRESS keeps untyped flags out of the namespace, so overrides holds only what was typed.
        common = dict(dest=key, default=argparse.SUPPRESS, help=f"{help_text[key]} (default: {default})")
        if isinstance(default, bool):
            parser.add_argument(flag, nargs="?", const=True, type=_parse_bool, **common)
        else:
            parser.add_argument(flag, type=type(default), metavar=type(default).__name__.upper(), **common)
    overrides = vars(parser.parse_args(argv))
    validate(overrides)
    cfg = SimpleNamespace(**{**values, **overrides})
    if cfg.binarize != "none" and cfg.likelihood != "bernoulli":
        raise UserError(f"--binarize {cfg.binarize} makes 0/1 pixels, whose likelihood is Bernoulli: "
                        "add --likelihood bernoulli")
    if cfg.estimator != "standard" and cfg.objective != "iwae":
        raise UserError(f"--estimator {cfg.estimator} is a gradient of the importance-weighted bound: add --objective iwae")
    if cfg.objective == "iwae" and cfg.beta != 1:
        raise UserError(f"--beta {cfg.beta:g} weights the ELBO's KL; the IWAE's bound has no KL term to weight: "
                        "leave --beta at 1 with --objective iwae")
    chosen = {key: getattr(cfg, key) for key in ("objective", "k", "estimator", "stochastic_layers")
              if getattr(cfg, key) != values[key]}
    if chosen and cfg.model != "vae":
        raise UserError(f"{' '.join(as_flags(chosen))}: the objective, k, estimator and stochastic layers are the VAE's "
                        "(the AE draws no samples); add --model vae")
    return cfg, overrides


def validate(cfg):
    """Refuse values no run can use, before any work is done."""
    for key, value in cfg.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise UserError(f"unknown {key} {value!r}: choose one of {', '.join(map(str, _CHOICES[key]))}")
        if key in _POSITIVE and not value > 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive, got {value}")
        if key in _AT_MOST and value > _AT_MOST[key]:
            raise UserError(f"--{key.replace('_', '-')} {value} is too large: at most {_AT_MOST[key]:,}")
        if key == "seed" and value < 0:
            raise UserError(f"--seed must be zero or positive, got {value}")
        if key == "adam_beta1" and not 0 <= value < 1:
            raise UserError(f"--adam-beta1 must be at least 0 and below 1, got {value}")
        if key == "beta" and not value >= 0:
            raise UserError(f"--beta must be zero or positive, got {value}")
        if key in ("start", "end") and not 0 <= value <= 9:
            raise UserError(f"--{key} must be a class index from 0 to 9, got {value}")


def merge(stored, overrides):
    """A checkpoint's config with today's defaults for what it lacks and the user's overrides on top."""
    kept = {key: value for key, value in stored.items() if key in defaults() and key not in RUNTIME_KEYS}
    return SimpleNamespace(**{**defaults(), **kept, **overrides})


def as_flags(values):  # {"latent_dims": 50} -> ["--latent-dims", "50"]
    return [text for key, value in values.items() for text in ("--" + key.replace("_", "-"), str(value))]


def models(choice):  # the models a --model value stands for: "both" is ae then vae
    return MODELS if choice == "both" else (choice,)
