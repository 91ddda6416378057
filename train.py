"""Train the Autoencoder and the Variational Autoencoder; one checkpoint per model in ckpts/.

    python train.py                                  # both models, MNIST, 5 epochs
    python train.py --model vae --dataset fashion-mnist --latent-dims 8
    python train.py --resume --epochs 10             # continue both runs to 10 epochs
"""
import math
import time

import torch
from tqdm import tqdm

import checkpoints
import cli
import config
import data
from cli import UserError
from loop import make_optimizer, train_epoch
from metrics import evaluate
from model import build


def fit(name, cfg, overrides, dataset, device):
    path = checkpoints.path(cfg, name)
    torch.manual_seed(cfg.seed)  # the same weights and batches whichever other models run beside this one
    if cfg.resume:
        model, checkpoint, cfg = checkpoints.resume(cfg, name, overrides, device)
        history = checkpoint["history"]
    else:
        model, checkpoint, history = build(name, cfg).to(device), None, []
    optimizer = make_optimizer(model, cfg.learning_rate, device)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate  # a resumed run may choose a new learning rate
        checkpoints.set_rng_state(checkpoint["rng"], device)
    step = torch.compile(model) if cfg.compile else model

    train_count = len(dataset.train_images)
    batches_per_epoch = math.ceil(train_count / cfg.batch_size)
    first_epoch = len(history) + 1
    resumed = f", resuming after epoch {first_epoch - 1}" if history else ""
    print(f"Training {name.upper()} on {cfg.dataset} for {cfg.epochs} epochs on {device}{resumed} "
          f"(latent {cfg.latent_dims}, batch {cfg.batch_size}, {train_count} train images)")
    with tqdm(range(first_epoch, cfg.epochs + 1), desc=name, unit="epoch", disable=None) as epoch_bar, \
            tqdm(total=batches_per_epoch, unit="batch", leave=False, disable=None) as batch_bar:
        for epoch in epoch_bar:
            batch_bar.reset()
            started = time.perf_counter()
            train_loss = train_epoch(step, optimizer, dataset.train_images, cfg.batch_size, batch_bar, cfg.bf16).item()
            seconds = time.perf_counter() - started
            if not math.isfinite(train_loss):
                raise UserError(
                    f"{name}: the training loss became {train_loss} in epoch {epoch}; stopped, nothing written "
                    f"({path} is as it was). Try a smaller --learning-rate"
                )
            test = evaluate(model, dataset.test_images)
            history.append({"epoch": epoch, "train_loss": train_loss, "test_loss": test["loss"],
                            "test_recon": test["recon"], "test_kl": test["kl"], "seconds": seconds})
            tqdm.write(f"Epoch {epoch}/{cfg.epochs} - Test Loss: {test['loss']:.4f} - Train Loss: {train_loss:.4f}"
                       f" - {seconds:.2f} s, {train_count / seconds:,.0f} samples/s")
    checkpoints.save(cfg, name, model, optimizer, history)
    print(f"Saved {path}")


def main():
    keys = ("model", "dataset", "device", "seed", "epochs", "batch_size", "learning_rate", "resume", "compile",
            "bf16", "latent_dims", "hidden_dims", "likelihood", "beta", "data_root", "ckpt_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = cli.resolve_device(cfg.device)
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    for name in config.models(cfg.model):
        fit(name, cfg, overrides, dataset, device)


if __name__ == "__main__":
    cli.run(main)
