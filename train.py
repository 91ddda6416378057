"""Train the Autoencoder and the Variational Autoencoder; one checkpoint per model in ckpts/, written every epoch.

    python train.py                                  # both models, MNIST, 5 epochs
    python train.py --model vae --dataset fashion-mnist --latent-dims 8
    python train.py --resume --epochs 10             # continue both runs to 10 epochs (or an interrupted run)
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import contextlib
import math
import time

import torch
from tqdm import tqdm

import checkpoints
import config
import data
from checkpoints import build, model_args
from cli import UserError
from files import check_writable
from literature import initialise
from loop import evaluate, make_optimizer, train_epoch

def plan(name, cfg, overrides, device):
    """The checkpoint training `name` resumes (checkpoints.Loaded), or None for a fresh run, checked before any work;
    --resume starts afresh a model with no checkpoint yet (a `--model both` run stopped before its second began)."""
    path = checkpoints.path(cfg, name)
    if cfg.resume and path.exists():
        return checkpoints.resume(cfg, name, overrides, device)
    if cfg.resume:
        print(f"{path} does not exist: the {name.upper()} starts from scratch")
    held = checkpoints.epochs_in(cfg, name)
    if held > cfg.epochs and not cfg.overwrite:
        raise UserError(f"{path} holds {cli.count_of(held, 'epoch')} of training, and this run would replace it with "
                        f"{cfg.epochs}: continue it with --resume --epochs N, train elsewhere with --ckpt-dir, or pass "
                        "--overwrite")
    checkpoints.check_fits(name, cfg, device)
    return None


def on_disk(path, epochs):
    """What the checkpoint at `path` holds for the user to continue from, in words."""
    if epochs:
        return f"{path} holds epochs 1-{epochs}; continue with --resume"
    return f"{path} is as it was" if path.exists() else f"no checkpoint was written to {path}"


def fit(name, cfg, dataset, device, resumed):
    path = checkpoints.path(cfg, name)
    torch.manual_seed(cfg.seed)  # the same weights and batches whichever other models run beside this one
    if resumed:
        model, checkpoint, cfg = resumed
        history = checkpoint["history"]
    else:
        model, checkpoint, history = build(name, model_args(cfg)).to(device), None, []
        initialise(model, cfg.init, dataset.train_images)
    optimizer = make_optimizer(model, cfg.learning_rate, device, cfg.adam_eps, cfg.adam_beta1)
    if checkpoint is not None:
        checkpoints.restore_training(checkpoint, optimizer, cfg, device)  # Adam's state and the random state
    step = torch.compile(model) if cfg.compile else model

    train_count = len(dataset.train_images)
    saved = epoch = len(history)  # the epochs the checkpoint holds, of this line of training
    try:
        print(f"Training {name.upper()} on {cfg.dataset} for {cli.count_of(cfg.epochs, 'epoch')} on {device}"
              f"{f', resuming after epoch {saved}' if history else ''} (latent {cfg.latent_dims}, batch "
              f"{cfg.batch_size}, {train_count} train images)", flush=True)
        with tqdm(range(saved + 1, cfg.epochs + 1), desc=name, unit="epoch", disable=None) as epoch_bar, \
                tqdm(total=math.ceil(train_count / cfg.batch_size), unit="batch", leave=False, disable=None) as batch_bar:
            for epoch in epoch_bar:
                batch_bar.reset()
                started = time.perf_counter()
                train_loss = train_epoch(step, optimizer, dataset.train_images, cfg.batch_size, batch_bar, cfg.bf16,
                                         dataset.resample).item()
                seconds = time.perf_counter() - started
                if not math.isfinite(train_loss):
                    raise UserError(f"{name}: the training loss became {train_loss} in epoch {epoch}; stopped, "
                                    f"{on_disk(path, saved)}. Try a smaller --learning-rate")
                test = evaluate(model, dataset.test_images)
                history.append({"epoch": epoch, "train_loss": train_loss, "test_loss": test["loss"],
                                "test_recon": test["recon"], "test_kl": test["kl"], "seconds": seconds})
                with cli.signals_held():  # an interruption lands before or after this pair, never between
                    checkpoints.save(cfg, name, model, optimizer, history)
                    saved = epoch
                tqdm.write(f"Epoch {epoch}/{cfg.epochs} - Test Loss: {test['loss']:.4f} - Train Loss: {train_loss:.4f}"
                           f" - {seconds:.2f} s, {train_count / seconds:,.0f} samples/s")
    except KeyboardInterrupt:
        where = f"in epoch {epoch}" if epoch > saved else f"after epoch {epoch}" if epoch else "before epoch 1"
        raise cli.Stopped(f"{name.upper()} {where}; {on_disk(path, saved)}") from None
    except BrokenPipeError:
        raise cli.Stopped(f"standard output was closed (e.g. by `| head`); {name.upper()}: {on_disk(path, saved)}") from None
    print(f"Saved {path} ({cli.count_of(saved, 'epoch')})", flush=True)


def main():
    evaluation_only = ("iw_samples", "start", "end", "plot_dir")
    cfg, overrides = config.parse([key for key in config.defaults() if key not in evaluation_only], description=__doc__)
    device = cli.resolve_device(cfg.device, cfg.bf16)
    check_writable(cfg.ckpt_dir, "--ckpt-dir")
    with contextlib.ExitStack() as held:  # each checkpoint this run may write, held from before it is read
        for name in config.models(cfg.model):
            held.enter_context(checkpoints.training_lock(cfg, name))
        train_all(cfg, overrides, device)


def train_all(cfg, overrides, device):
    plans = {name: plan(name, cfg, overrides, device) for name in config.models(cfg.model)}
    for name, start in list(plans.items()):
        if start and len(start.checkpoint["history"]) == start.cfg.epochs:
            print(f"{checkpoints.path(cfg, name)} already holds {cli.count_of(cfg.epochs, 'epoch')}: nothing to train")
            del plans[name]
    if not plans:
        return
    # Each new checkpoint is written beside the one it replaces: the folder must hold the new ones in full.
    needed = sum(checkpoints.expected_size(name, start.checkpoint["model_args"] if start else model_args(cfg), cfg.epochs)
                 for name, start in plans.items())
    check_writable(cfg.ckpt_dir, "--ckpt-dir", needed)
    dataset = data.load(cfg.dataset, cfg.data_root, device, cfg.binarize)
    for index, (name, start) in enumerate(plans.items()):
        try:
            fit(name, cfg, dataset, device, start)
        except cli.Stopped as stop:
            later = " and ".join(later.upper() for later in list(plans)[index + 1 :])
            raise cli.Stopped(f"{stop}{f'; the {later} did not start' if later else ''}") from None


if __name__ == "__main__":
    cli.run(main)
