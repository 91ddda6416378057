"""Seconds per training epoch and per test-set evaluation of the VAE, three ways, in one process on the same data:

  (a) this project's loop: uint8 images resident on the device, batches cut by a random permutation;
  (b) the common torchvision path: DataLoader over the dataset with ToTensor(), one PIL image at a time;
  (c) the floor: only the matrix multiplies of the same network's forward and backward passes.

    python -m benchmarks.epoch --dataset fashion-mnist            # add --device cuda on a GPU machine
"""
import math
import statistics
import time
from types import SimpleNamespace

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms
from tqdm import tqdm

import cli
import config
import data
from loop import make_optimizer, train_epoch
from metrics import EVAL_BATCH_SIZE, evaluate
from model import build

SCALE_BATCH_SIZES = (128, 512, 2048)
SCALE_LATENT_DIMS = (2, 64)
REPEATS = 7  # the headline figures are the best of this many epochs
SCALE_REPEATS = 2  # and each cell of the scaling table the best of this many


def timed_rounds(device, works, repeats):
    """Seconds each of `works` takes, in `repeats` rounds: one row per round, one figure per work.

    The works take turns within a round, so a slow spell of a shared machine hits neighbours alike.
    """
    rounds = []
    for _ in range(repeats):
        seconds = []
        for work in works:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
        rounds.append(seconds)
    return rounds


def best_times(device, works, repeats=1):
    """The fewest seconds each of `works` takes over `repeats` rounds: the figure least disturbed by other
    processes, which only ever add time."""
    return [min(column) for column in zip(*timed_rounds(device, works, repeats))]


def replaced(cfg, **values):
    """A copy of cfg with some values replaced."""
    return SimpleNamespace(**{**vars(cfg), **values})


def vae(cfg, device):
    torch.manual_seed(cfg.seed)
    return build("vae", cfg).to(device)


def project_loop(cfg, dataset, device, batch_size, train_count=None):
    """(a): (train epoch, evaluation) as train.py and test.py run them, warmed up and ready to time."""
    model = vae(cfg, device)
    optimizer = make_optimizer(model, cfg.learning_rate, device)
    quiet = tqdm(disable=True)
    train_images = dataset.train_images[:train_count]
    train_epoch(model, optimizer, train_images[: 20 * batch_size], batch_size, quiet)  # warm-up
    evaluate(model, dataset.test_images[:EVAL_BATCH_SIZE])  # warm-up
    return (lambda: train_epoch(model, optimizer, train_images, batch_size, quiet).item(),
            lambda: evaluate(model, dataset.test_images))


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


def gemm_floor(model, count, batch_size):
    """(c): just the forward and backward matrix multiplies of one epoch through `model`'s own nn.Linear layers,
    into preallocated outputs: the arithmetic any implementation of this network has to do."""
    layers = [module for module in model.modules() if isinstance(module, nn.Linear)]
    weights = [layer.weight.detach() for layer in layers]  # (out, in) each
    device = weights[0].device
    weight_grads = [torch.empty_like(weight) for weight in weights]
    inputs = [torch.randn(batch_size, weight.shape[1], device=device) for weight in weights]
    outputs = [torch.randn(batch_size, weight.shape[0], device=device) for weight in weights]
    output_grads = [torch.randn(batch_size, weight.shape[0], device=device) for weight in weights]
    input_grads = [torch.empty(batch_size, weight.shape[1], device=device) for weight in weights]
    sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]

    def one_batch(rows):
        for index, weight in enumerate(weights):
            x, grad_y = inputs[index][:rows], output_grads[index][:rows]
            torch.mm(x, weight.T, out=outputs[index][:rows])  # forward
            torch.mm(grad_y.T, x, out=weight_grads[index])  # backward: the weight's gradient
            if index > 0:  # and the input's, but for the first layer, whose input is the images
                torch.mm(grad_y, weight, out=input_grads[index][:rows])

    for rows in sizes[:10]:  # warm-up
        one_batch(rows)
    return lambda: [one_batch(rows) for rows in sizes]


def paired_ratio(rounds):
    """(median, lowest, highest) over rounds of the first work's seconds divided by the second's.

    On a shared machine the floor itself moves by up to 20% between spells; (a) against the (c) run right beside
    it moves far less, so the ratio is taken round by round.
    """
    ratios = [seconds[0] / seconds[1] for seconds in rounds]
    return statistics.median(ratios), min(ratios), max(ratios)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


def main():
    cfg, _ = config.parse(("dataset", "device", "seed", "batch_size", "latent_dims", "data_root"), description=__doc__)
    device = cli.resolve_device(cfg.device)
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    count, test_count = len(dataset.train_images), len(dataset.test_images)
    print(f"VAE on {cfg.dataset}: {count} train / {test_count} test images, batch {cfg.batch_size}, "
          f"latent {cfg.latent_dims}, hidden {cfg.hidden_dims}; device: {device_name(device)}; torch {torch.__version__}")

    project = project_loop(cfg, dataset, device, cfg.batch_size)
    floor = gemm_floor(vae(cfg, device), count, cfg.batch_size)
    rounds = timed_rounds(device, [project[0], floor, project[1]], REPEATS)
    a_train, c_train, a_test = (min(column) for column in zip(*rounds))
    a_over_c, lowest, highest = paired_ratio(rounds)
    b_train, b_test = best_times(device, dataloader_loop(cfg, device, cfg.batch_size))  # once: it is slow
    print(f"\n{'':34}{'train s/epoch':>14}{'samples/s':>12}{'test s':>9}")
    for label, train, test in [("(a) this project", a_train, a_test), ("(b) DataLoader(ToTensor())", b_train, b_test),
                               ("(c) matrix-multiply floor", c_train, None)]:
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
            floor_work = gemm_floor(vae(cell, device), count, batch_size)
            train, floor = best_times(device, [train_work, floor_work], SCALE_REPEATS)
            cells.append(f"{train:.3f} ({floor:.3f})")
        print(f"{batch_size:>8}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    cli.run(main)
