"""Seconds per training epoch and per test-set evaluation of the VAE, three ways, in one process on the same data:

  (a) this project's loop: uint8 images resident on the device, batches cut by a random permutation;
  (b) the common torchvision path: DataLoader over the dataset with ToTensor(), one PIL image at a time;
  (c) the floor: only the matrix multiplies of the same network's forward and backward passes, and one fused Adam
      pass a step over all parameters at once (benchmarks/works.py).

    python -m benchmarks.epoch --dataset fashion-mnist            # add --device cuda on a GPU machine
"""
import math

import torch
from torch.utils.data import DataLoader
from torchvision import transforms

import cli
import config
import data
from benchmarks.timing import best_of, best_times, device_name, paired_ratio, timed_rounds
from benchmarks.works import project_loop, replaced, step_floor, vae

SCALE_BATCH_SIZES = (128, 512, 2048)
SCALE_LATENT_DIMS = (2, 64)
REPEATS = 7  # the headline figures are the best of this many epochs
SCALE_REPEATS = 2  # and each cell of the scaling table the best of this many


def seconds_per_step_fixed(cfg, dataset, device, steps=500):
    """What (a) costs per step whatever the network's size (Python, dispatch, autograd, the optimizer's bookkeeping):
    its loop timed on a network 8 wide with batches of 4, where the arithmetic is next to nothing."""
    batch_size = 4
    train_count = min(steps * batch_size, len(dataset.train_images))
    train_work, _ = project_loop(replaced(cfg, hidden_dims=8), dataset, device, batch_size, train_count)
    (seconds,) = best_times(device, [train_work], repeats=3)
    return seconds / math.ceil(train_count / batch_size)


def dataloader_loop(cfg, device, batch_size):
    """(b): (train epoch, evaluation) of the same model fed the way most tutorials feed it."""
    model = vae(cfg, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)  # the usual, unfused Adam
    dataset_class = data.DATASET_CLASSES[cfg.dataset]
    splits = {train: dataset_class(cfg.data_root, train=train, transform=transforms.ToTensor()) for train in (True, False)}

    def train_epoch_dataloader():
        for x, _ in DataLoader(splits[True], batch_size=batch_size, shuffle=True):
            loss, _, _ = model(x.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the usual per-batch running total

    @torch.no_grad()
    def evaluate_dataloader():
        for x, _ in DataLoader(splits[False], batch_size=batch_size):
            model(x.to(device))[0].item()

    return train_epoch_dataloader, evaluate_dataloader


def main():
    cfg, _ = config.parse(("dataset", "device", "seed", "batch_size", "latent_dims", "data_root"), description=__doc__)
    device = cli.resolve_device(cfg.device)
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    count, test_count = len(dataset.train_images), len(dataset.test_images)
    print(f"VAE on {cfg.dataset}: {count} train / {test_count} test images, batch {cfg.batch_size}, "
          f"latent {cfg.latent_dims}, hidden {cfg.hidden_dims}; device: {device_name(device)}; torch {torch.__version__}")

    project = project_loop(cfg, dataset, device, cfg.batch_size)
    floor = step_floor(vae(cfg, device), count, cfg.batch_size, cfg.learning_rate)
    rounds = timed_rounds(device, [project[0], floor, project[1]], REPEATS)
    a_train, c_train, a_test = best_of(rounds)
    a_over_c, lowest, highest = paired_ratio(rounds)
    b_train, b_test = best_times(device, dataloader_loop(cfg, device, cfg.batch_size))  # once: it is slow
    print(f"\n{'':34}{'train s/epoch':>14}{'samples/s':>12}{'test s':>9}")
    for label, train, test in [("(a) this project", a_train, a_test), ("(b) DataLoader(ToTensor())", b_train, b_test),
                               ("(c) floor: multiplies + Adam", c_train, None)]:
        test_text = f"{test:9.3f}" if test is not None else f"{'-':>9}"
        print(f"{label:34}{train:14.3f}{count / train:12,.0f}{test_text}")
    print(f"\na/b = {a_train / b_train:.3f} (train), {a_test / b_test:.3f} (test)   b/a = {b_train / a_train:.1f}x")
    print(f"a/c = {a_over_c:.3f} (median of {REPEATS} rounds of (a) beside (c); {lowest:.3f} to {highest:.3f})")
    step_cost, steps = seconds_per_step_fixed(cfg, dataset, device), math.ceil(count / cfg.batch_size)
    print(f"fixed cost per step, whatever the network's size: {1000 * step_cost:.2f} ms (network 8 wide, batch 4); "
          f"x {steps} steps = {step_cost * steps:.3f} s of (a)'s epoch")
    # What `python train.py` does per model: 5 epochs, each followed by a pass over the test set.
    a_run, b_run = 5 * (a_train + a_test), 5 * (b_train + b_test)
    print(f"5 epochs, each with a test pass: (a) {a_run:.1f} s, (b) {b_run:.1f} s, a/b = {a_run / b_run:.2f}")

    print(f"\n(a) train s/epoch by batch size and latent dims, best of {SCALE_REPEATS}; (c) floor in brackets")
    print(f"{'batch':>8}" + "".join(f"{f'latent {latent}':>22}" for latent in SCALE_LATENT_DIMS))
    for batch_size in SCALE_BATCH_SIZES:
        cells = []
        for latent_dims in SCALE_LATENT_DIMS:
            cell = replaced(cfg, latent_dims=latent_dims)
            train_work, _ = project_loop(cell, dataset, device, batch_size)
            floor_work = step_floor(vae(cell, device), count, batch_size, cfg.learning_rate)
            train, floor = best_times(device, [train_work, floor_work], SCALE_REPEATS)
            cells.append(f"{train:.3f} ({floor:.3f})")
        print(f"{batch_size:>8}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    cli.run(main)
