"""Train the Autoencoder and the Variational Autoencoder; one checkpoint per model in ckpts/.

    python train.py                                  # both models, MNIST, 5 epochs
    python train.py --model vae --dataset fashion-mnist --latent-dims 8
    python train.py --resume --epochs 10             # continue both runs to 10 epochs
"""
import math
import time

import torch
from tqdm import tqdm

import config
import data
from config import UserError
from model import build, model_args
from test import evaluate, load_checkpoint


def train_epoch(model, optimizer, images, batch_size, progress, bf16=False):
    """One pass over `images` in shuffled mini-batches; returns the mean training loss per image (a tensor).

    The loss is summed on the device and read once by the caller: no host sync inside the epoch.
    """
    total = torch.zeros((), device=images.device)
    for x in data.batches(images, batch_size, shuffle=True):  # x: (B, 28, 28)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = model(x)
        model.zero_grad()  # grads to None, as optimizer.zero_grad() does, with less Python per step
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(x)
        progress.update()
    return total / len(images)


def make_optimizer(model, learning_rate, device):
    # Adam's fused kernel updates all parameters in one pass (faster); it agrees with the loop version to rounding.
    return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=device.type in ("cuda", "cpu"))


def rng_state(device):
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path, name, model, optimizer, cfg, history, device):
    """Everything needed to rebuild the model (test.py) or continue training (--resume), written atomically."""
    checkpoint = {
        "model": name,
        "model_args": model_args(cfg),
        "config": vars(cfg),
        "weights": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(device),
        "history": history,
    }
    with config.atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def resume_from(cfg, name, overrides, device):
    """(model, optimizer state, rng state, history, cfg) of an earlier run, refusing changes to its architecture."""
    path = config.checkpoint_path(cfg, name)
    model, checkpoint, cfg = load_checkpoint(cfg, name, overrides, device)
    changed = [
        f"--{key.replace('_', '-')} {overrides[key]} (checkpoint: {checkpoint['config'][key]})"
        for key in config.ARCHITECTURE_KEYS
        if key in overrides and overrides[key] != checkpoint["config"].get(key)
    ]
    if changed:
        raise UserError(f"--resume cannot change the model of {path}: {', '.join(changed)}; train afresh without --resume")
    history = checkpoint["history"]
    if len(history) >= cfg.epochs:
        raise UserError(f"{path} is already trained for {len(history)} epochs; pass --epochs N with N > {len(history)}")
    return model, checkpoint["optimizer"], checkpoint["rng"], history, cfg


def fit(name, cfg, overrides, dataset, device):
    path = config.checkpoint_path(cfg, name)
    torch.manual_seed(cfg.seed)  # the same weights and batches whichever other models run beside this one
    if cfg.resume:
        model, optimizer_state, rng, history, cfg = resume_from(cfg, name, overrides, device)
    else:
        model, optimizer_state, rng, history = build(name, cfg).to(device), None, None, []
    optimizer = make_optimizer(model, cfg.learning_rate, device)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate  # a resumed run may choose a new learning rate
        set_rng_state(rng, device)
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
    save_checkpoint(path, name, model, optimizer, cfg, history, device)
    print(f"Saved {path}")


def main():
    keys = ("model", "dataset", "device", "seed", "epochs", "batch_size", "learning_rate", "resume", "compile",
            "bf16", "latent_dims", "hidden_dims", "likelihood", "beta", "data_root", "ckpt_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = config.resolve_device(cfg.device)
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    for name in config.models(cfg.model):
        fit(name, cfg, overrides, dataset, device)


if __name__ == "__main__":
    config.run(main)
