"""The checkpoint: where it lives, what it holds, how it is written, read and checked.

A dict of tensors and plain data, so torch.load(weights_only=True) reads it and it cannot run code: model ("ae" |
"vae"), model_args (config.MODEL_ARGS: the model is rebuilt from the file alone), config, weights, and for --resume
optimizer (Adam's state), rng (the random state) and history (one dict per epoch).
"""
import contextlib
import inspect
import io
import os
import pickle
import re
from pathlib import Path
from typing import NamedTuple

import torch

import cli
import config
from cli import UserError
from files import LockHeld, atomic_path, exclusive_lock
from config import MODEL_ARGS
from literature import KSampleVAE
from model import PIXELS, AutoEncoder
from two_layers import TwoLayerVAE

# What the weights were trained for: a resumed run may not change these.
FIXED_ON_RESUME = ("dataset", "binarize", "init", *MODEL_ARGS)
# Constructor arguments added after checkpoints existed, with the value every older checkpoint was built with.
ADDED_LATER = {"hidden_layers": 1, "activation": "relu", "objective": "elbo", "k": 1, "estimator": "standard",
               "stochastic_layers": 1, "top_latent_dims": 50, "top_hidden_dims": 100}
# What every caller needs; load(needs=...) adds what one caller needs beyond these.
REQUIRED = ("model", "model_args", "config", "weights")
# What a checkpoint's size is made of (tested against real ones): float32 weights and Adam's two moments, and a little
# for the config, the random state and torch's zip records, and each epoch's history entry.
BYTES_PER_PARAMETER, FIXED_BYTES, BYTES_PER_EPOCH = 12, 64_000, 300
TRAINING_BYTES_PER_PARAMETER = 16  # in memory while training: float32 weight, gradient and Adam's two moments
LARGEST_SPLIT = 60_000  # no batch holds more images than this


class Loaded(NamedTuple):
    model: torch.nn.Module  # on the device asked for, with the stored weights
    checkpoint: dict
    cfg: object  # the stored config under today's overrides, the stored model_args over both


def model_args(cfg):
    """The model's arguments in a config: what a checkpoint stores to rebuild it."""
    return {key: getattr(cfg, key) for key in MODEL_ARGS}


def build(name, args):
    """Model `name` ("ae" | "vae") from its arguments; each class takes those its constructors name."""
    model_class = AutoEncoder if name == "ae" else TwoLayerVAE if args["stochastic_layers"] == 2 else KSampleVAE
    own = {key for klass in model_class.__mro__ if "__init__" in vars(klass)
           for key in inspect.signature(klass.__init__).parameters}
    return model_class(**{key: value for key, value in args.items() if key in own})


def parameter_count(name, args):
    """How many parameters model `name` has with arguments `args`, counted without allocating them."""
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in build(name, args).parameters())


def path(cfg, name):
    return Path(cfg.ckpt_dir) / f"{cfg.dataset}_{name}.pt"


def save(cfg, name, model, optimizer, history):
    """Everything needed to rebuild the model (test.py) or continue training (--resume), written atomically."""
    device = next(model.parameters()).device
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    checkpoint = {"model": name, "model_args": model_args(cfg), "config": vars(cfg), "weights": model.state_dict(),
                  "optimizer": optimizer.state_dict(), "rng": rng, "history": history}
    # Serialised in memory first: a full disk is then an OSError naming the file, not a torch error about zip records.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path(cfg, name)) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def check_fits(name, cfg, device):
    """Refuse a model too large for this machine's memory now, rather than with an allocator's traceback later."""
    parameters, rows = parameter_count(name, model_args(cfg)), min(cfg.batch_size, LARGEST_SPLIT) * cfg.k
    # Weights, gradients and Adam's moments; a few float32 copies of each layer's output per decoded row.
    widths = PIXELS + cfg.hidden_dims * cfg.hidden_layers + cfg.latent_dims
    needed = TRAINING_BYTES_PER_PARAMETER * parameters + 32 * rows * widths
    available = torch.cuda.mem_get_info(device)[1] if device.type == "cuda" else \
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        samples = f" ({cfg.k} samples of each image)" if cfg.k > 1 else ""
        raise UserError(f"the {name.upper()} is too large: about {needed / 2**30:,.1f} GiB for {parameters:,} parameters "
                        f"and batches of {rows}{samples}, more than this machine's memory ({available / 2**30:,.1f} "
                        f"GiB); use smaller {'--k, ' if samples else ''}--batch-size, --hidden-dims or --latent-dims")


def expected_size(name, args, epochs):
    """About how many bytes save() writes for model `name` with constructor arguments `args` after `epochs` epochs."""
    return BYTES_PER_PARAMETER * parameter_count(name, args) + FIXED_BYTES + BYTES_PER_EPOCH * epochs


@contextlib.contextmanager
def training_lock(cfg, name):
    """Hold the checkpoint of model `name` for one training run (files.exclusive_lock): a second is refused."""
    file = path(cfg, name)
    try:
        with exclusive_lock(file.with_name(f".{file.name}.lock")):
            yield
    except LockHeld as held:
        holder = f"process {held.holder}" if held.holder else "a process that is starting"
        raise UserError(f"{file} is being trained by another run ({holder}); wait for it to finish, stop it, "
                        "or train elsewhere with --ckpt-dir") from None


def epochs_in(cfg, name):
    """How many epochs of training the checkpoint at path(cfg, name) holds: 0 if there is none or it is unreadable."""
    try:
        return len(torch.load(path(cfg, name), map_location="cpu", weights_only=True)["history"])
    except Exception:  # no file, or one that holds no training a run could lose
        return 0


def restore_training(checkpoint, optimizer, cfg, device):
    """Adam's and the random state as save() stored them, so a resumed run steps as the uninterrupted one would;
    the learning rate, epsilon and beta1 are the resumed run's own."""
    optimizer.load_state_dict(checkpoint["optimizer"])
    for group in optimizer.param_groups:
        group.update(lr=cfg.learning_rate, eps=cfg.adam_eps, betas=(cfg.adam_beta1, group["betas"][1]))
    torch.set_rng_state(checkpoint["rng"]["cpu"])
    if device.type == "cuda" and "cuda" in checkpoint["rng"]:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)


def load(cfg, name, overrides, device, needs=()):
    """Model `name` rebuilt from its checkpoint (Loaded); `needs`: the parts beyond REQUIRED the caller reads."""
    file = path(cfg, name)
    if not file.is_file():
        raise UserError(f"no checkpoint at {file}: run `python train.py --model {name} --dataset {cfg.dataset}` first")
    checkpoint = read_data(file)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model_args"), dict):
        checkpoint["model_args"] = {**ADDED_LATER, **checkpoint["model_args"]}
    _refuse(file, _problem(checkpoint, name, cfg.dataset, REQUIRED + tuple(needs)))
    model = build(name, checkpoint["model_args"])
    try:
        model.load_state_dict(checkpoint["weights"])
    except RuntimeError as error:  # torch names the missing, unexpected and misshapen weights, a line each
        torch_lines = str(error).splitlines()[1:]
        _refuse(file, "its weights do not fit its model_args: " + "; ".join(line.strip(" \t.") for line in torch_lines))
    cfg = config.merge({**checkpoint["config"], **checkpoint["model_args"]}, overrides)
    return Loaded(model.to(device), checkpoint, cfg)


def resume(cfg, name, overrides, device):
    """load() for --resume: refuses a change to what the weights were trained for, or a checkpoint past --epochs."""
    model, checkpoint, cfg = load(cfg, name, overrides, device, needs=("optimizer", "rng", "history"))
    # A config key an older checkpoint lacks had today's default value when it was written.
    stored = {**config.defaults(), **checkpoint["config"], **checkpoint["model_args"]}
    changed = [f"--{key.replace('_', '-')} {overrides[key]} (checkpoint: {stored.get(key)})"
               for key in FIXED_ON_RESUME if key in overrides and overrides[key] != stored.get(key)]
    file = path(cfg, name)
    if changed:
        raise UserError(f"--resume cannot change the model of {file}: {', '.join(changed)}; train afresh without --resume")
    trained = len(checkpoint["history"])
    if trained > cfg.epochs:
        raise UserError(f"{file} is already trained for {cli.count_of(trained, 'epoch')}, more than --epochs "
                        f"{cfg.epochs}; pass --epochs N with N > {trained} to train it further")
    return Loaded(model, checkpoint, cfg)


def read_data(file):
    """`file` read as tensors and plain data only: torch refuses a file that would call code, and this names it."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        code = re.findall(r"GLOBAL (\S+)", str(error)) if isinstance(error, pickle.UnpicklingError) else []
        if code:  # what the file would have called, as torch names it
            raise UserError(f"{file} was refused: it holds Python objects other than tensors and plain data "
                            f"({', '.join(code)}), which could run code when loaded; only load checkpoints written "
                            "by train.py") from None
        raise UserError(f"{file} is not a usable checkpoint of this project (damaged, or not a checkpoint); "
                        "retrain with train.py") from None


def _refuse(file, problem):
    if problem:
        raise UserError(f"{file} is not a usable checkpoint of this project: {problem}; retrain with train.py")


def _problem(checkpoint, name, dataset, needs):
    """What makes a loaded checkpoint unusable as model `name`, in a few words; None if it is usable."""
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}, not a dict"
    missing = [key for key in needs if key not in checkpoint]
    if missing:
        return f"it lacks {', '.join(missing)}"
    kind, args, weights = checkpoint["model"], checkpoint["model_args"], checkpoint["weights"]
    if kind not in config.MODELS:
        return f"its model is {kind!r}, not one of {', '.join(config.MODELS)}"
    if kind != name:
        return f"it is a checkpoint of the {kind.upper()}, not the {name.upper()}"
    if not isinstance(args, dict) or set(args) != set(MODEL_ARGS):
        return f"its model_args are not {', '.join(MODEL_ARGS)}"
    defaults = config.defaults()
    wrong_type = [key for key, value in args.items() if type(value) is not type(defaults[key])]
    if wrong_type:
        return f"its model_args hold {', '.join(f'{key}={args[key]!r}' for key in wrong_type)}"
    try:
        config.validate(args)
    except UserError as error:
        return f"its model_args are out of range ({error})"
    if not isinstance(weights, dict) or not all(isinstance(value, torch.Tensor) for value in weights.values()):
        return "its weights are not a dict of tensors"
    if not isinstance(checkpoint["config"], dict) or not isinstance(checkpoint.get("history", []), list):
        return "its config or history is malformed"
    if checkpoint["config"].get("dataset") != dataset:  # a renamed or copied file
        return f"it was trained on {checkpoint['config'].get('dataset')}, not on {dataset} as its name says"
    return None
