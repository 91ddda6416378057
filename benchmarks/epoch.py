"""Seconds per training epoch and per test-set evaluation of the VAE, three ways, in one process on the same data:

  (a) this project's loop: uint8 images resident on the device, batches cut by a random permutation;
  (b) the common torchvision path: DataLoader over the dataset with ToTensor(), one PIL image at a time;
  (c) the floor: only the matrix multiplies of the same network's forward and backward passes.

    python -m benchmarks.epoch --dataset fashion-mnist            # add --device cuda on a GPU machine
"""
import math
import statistics
import time

import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from tqdm import tqdm

import config
import data
from model import PIXELS, build
from test import EVAL_BATCH_SIZE, evaluate
from train import make_optimizer, train_epoch

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


def project_loop(cfg, dataset, device, batch_size, latent_dims, train_count=None):
    """(a): (train epoch, evaluation) as train.py and test.py run them, warmed up and ready to time."""
    torch.manual_seed(cfg.seed)
    cfg = config.merge(vars(cfg), {"latent_dims": latent_dims})
    model = build("vae", cfg).to(device)
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
    tiny = config.merge(vars(cfg), {"hidden_dims": 8})
    train_work, _ = project_loop(tiny, dataset, device, batch_size, cfg.latent_dims, train_count)
    (seconds,) = best_times(device, [train_work], repeats=3)
    return seconds / math.ceil(train_count / batch_size)


def dataloader_loop(cfg, device, batch_size):
    """(b): (train epoch, evaluation) of the same model fed the way most tutorials feed it."""
    torch.manual_seed(cfg.seed)
    model = build("vae", cfg).to(device)
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


def gemm_floor(cfg, device, count, batch_size, latent_dims):
    """(c): just the forward and backward matrix multiplies of one epoch, into preallocated outputs."""
    hidden = cfg.hidden_dims
    shapes = {"w_in": (hidden, PIXELS), "w_mu": (latent_dims, hidden), "w_logvar": (latent_dims, hidden),
              "w_up": (hidden, latent_dims), "w_out": (PIXELS, hidden)}
    weights = {name: torch.randn(shape, device=device) for name, shape in shapes.items()}
    grads = {name: torch.empty(shape, device=device) for name, shape in shapes.items()}
    sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]
    widths = {"x": PIXELS, "h": hidden, "mu": latent_dims, "logvar": latent_dims, "z": latent_dims, "h2": hidden,
              "out": PIXELS, "g_out": PIXELS, "g_h2": hidden, "g_z": latent_dims, "g_h": hidden}
    buffers = {name: torch.randn(batch_size, width, device=device) for name, width in widths.items()}

    def one_batch(rows):
        b = {name: buffer[:rows] for name, buffer in buffers.items()}
        w = weights
        # forward: encoder, two heads, decoder
        torch.mm(b["x"], w["w_in"].T, out=b["h"])
        torch.mm(b["h"], w["w_mu"].T, out=b["mu"])
        torch.mm(b["h"], w["w_logvar"].T, out=b["logvar"])
        torch.mm(b["z"], w["w_up"].T, out=b["h2"])
        torch.mm(b["h2"], w["w_out"].T, out=b["out"])
        # backward: weight gradients of every layer, input gradients down to the first layer
        torch.mm(b["g_out"].T, b["h2"], out=grads["w_out"])
        torch.mm(b["g_out"], w["w_out"], out=b["g_h2"])
        torch.mm(b["g_h2"].T, b["z"], out=grads["w_up"])
        torch.mm(b["g_h2"], w["w_up"], out=b["g_z"])
        torch.mm(b["g_z"].T, b["h"], out=grads["w_mu"])
        torch.mm(b["g_z"].T, b["h"], out=grads["w_logvar"])
        torch.mm(b["g_z"], w["w_mu"], out=b["g_h"])
        torch.addmm(b["g_h"], b["g_z"], w["w_logvar"], out=b["g_h"])
        torch.mm(b["g_h"].T, b["x"], out=grads["w_in"])

    for rows in sizes[:10]:  # warm-up
        one_batch(rows)
    return lambda: [one_batch(rows) for rows in sizes]


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


def main():
    cfg, _ = config.parse(("dataset", "device", "seed", "batch_size", "latent_dims", "data_root"), description=__doc__)
    device = config.resolve_device(cfg.device)
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    count, test_count = len(dataset.train_images), len(dataset.test_images)
    print(f"VAE on {cfg.dataset}: {count} train / {test_count} test images, batch {cfg.batch_size}, "
          f"latent {cfg.latent_dims}, hidden {cfg.hidden_dims}; device: {device_name(device)}; torch {torch.__version__}")

    project = project_loop(cfg, dataset, device, cfg.batch_size, cfg.latent_dims)
    floor = gemm_floor(cfg, device, count, cfg.batch_size, cfg.latent_dims)
    rounds = timed_rounds(device, [project[0], floor, project[1]], REPEATS)
    a_train, c_train, a_test = (min(column) for column in zip(*rounds))
    # On a shared machine the floor itself moves by 20% between spells; (a) against the (c) run right beside it
    # moves far less, so the ratio is the median of the rounds' own ratios.
    ratios = [a / c for a, c, _ in rounds]
    b_train, b_test = best_times(device, dataloader_loop(cfg, device, cfg.batch_size))  # once: it is slow
    print(f"\n{'':34}{'train s/epoch':>14}{'samples/s':>12}{'test s':>9}")
    for label, train, test in [("(a) this project", a_train, a_test), ("(b) DataLoader(ToTensor())", b_train, b_test),
                               ("(c) matrix-multiply floor", c_train, None)]:
        test_text = f"{test:9.3f}" if test is not None else f"{'-':>9}"
        print(f"{label:34}{train:14.3f}{count / train:12,.0f}{test_text}")
    print(f"\na/b = {a_train / b_train:.3f} (train), {a_test / b_test:.3f} (test)   b/a = {b_train / a_train:.1f}x")
    print(f"a/c = {statistics.median(ratios):.3f} (median of {REPEATS} rounds of (a) beside (c); "
          f"{min(ratios):.3f} to {max(ratios):.3f})")
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
            train_work, _ = project_loop(cfg, dataset, device, batch_size, latent_dims)
            floor_work = gemm_floor(cfg, device, count, batch_size, latent_dims)
            train, floor = best_times(device, [train_work, floor_work], SCALE_REPEATS)
            cells.append(f"{train:.3f} ({floor:.3f})")
        print(f"{batch_size:>8}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    config.run(main)
