"""The literature's setting at the CPU's speed: seconds per training epoch of this project's loop (a) against its floor
(c), the model's own matrix multiplies and one fused Adam pass a step (benchmarks/works.py), and against the
hand-written step, the same step written out by hand in few calls into torch (benchmarks/handwritten.py, ELBO rows), for the
default VAE and for Burda et al.'s (2015) 784-200-200-50 tanh VAE on dynamically binarised data at batch 100
(the experiments command's) and 20 (the paper's), and trained as an IWAE with k = 5 and 50 samples an image (batch
100); then the literature's rows in float32 and under --bf16, paired round by round (the precision pays where
bfloat16 matrix units meet large multiplies); then the importance-weighted bound on Burda's network against its
decoder's multiplies, and written by hand.

    python -m benchmarks.literature                 # MNIST, k = 5000; a few minutes on 2 CPU cores
"""
import functools
import math

import torch

import cli
import config
import data
from benchmarks.handwritten import handwritten_bound, handwritten_loop
from benchmarks.timing import best_of, bf16_units, device_name, paired_ratio, timed_rounds
from benchmarks.works import decoder_floor, project_loop, replaced, step_floor, vae
from metrics import SAMPLES_PER_CHUNK, importance_weighted_nll

# (network, batch size, objective, k): the experiments command's rows and its IWAE rows of Table 1.
ROWS = (("default", 512, "elbo", 1), ("burda2015", 100, "elbo", 1), ("burda2015", 20, "elbo", 1),
        ("burda2015", 100, "iwae", 5), ("burda2015", 100, "iwae", 50))
# Each row is timed in ROUNDS short pairs of (a) beside (c), each on 1/EPOCH_FRACTION of the training set (a tenth
# of that again at k = 50, whose steps are long): a slow spell of a shared machine then falls on both works of a
# pair, and the median ratio passes over the rest.
ROUNDS = 15
EPOCH_FRACTION = 5
# (stochastic layers, batch size, objective, k): the rows timed in both precisions.
PRECISION_ROWS = ((1, 20, "elbo", 1), (1, 100, "elbo", 1), (1, 100, "iwae", 5), (1, 100, "iwae", 50),
                  (2, 100, "iwae", 50))
BOUND_IMAGES = 500  # test images the bound is timed on: a twentieth of the test set, the same work per image
BOUND_ROUNDS = 3


def training_rows(cfg, datasets, device):
    """One dict per row of ROWS: seconds per epoch of (a), (c) and, for the ELBO with k = 1, the hand-written step,
    from the best of ROUNDS rounds of a fifth of an epoch, and the paired a/c and hand/c."""
    rows = []
    for network, batch_size, objective, k in ROWS:
        network_cfg, dataset = datasets[network]
        row_cfg = replaced(network_cfg, objective=objective, k=k)
        fraction = EPOCH_FRACTION * (10 if k >= 50 else 1)
        count = len(dataset.train_images) // fraction
        train_work, _ = project_loop(row_cfg, dataset, device, batch_size, count)
        works = [train_work, step_floor(vae(row_cfg, device), count, batch_size, row_cfg.learning_rate)]
        if (objective, k) == ("elbo", 1):
            works.append(handwritten_loop(vae(row_cfg, device), row_cfg.activation, row_cfg.learning_rate,
                                          dataset.train_images[:count], batch_size, dataset.resample))
        rounds = timed_rounds(device, works, ROUNDS)
        a, c, *hand = (fraction * seconds for seconds in best_of(rounds))  # seconds per whole epoch
        rows.append({"network": network, "batch": batch_size, "objective": f"{objective} k={k}", "a": a, "c": c,
                     "hand": hand[0] if hand else None, "ratio": paired_ratio(rounds),
                     "hand_ratio": paired_ratio(rounds, 2, 1) if hand else None,
                     "steps": fraction * math.ceil(count / batch_size)})
    return rows


def precision_rows(cfg, dataset, device):
    """One dict per row of PRECISION_ROWS: seconds per epoch in float32 and under --bf16 (the same loop, weights and
    batches), best of ROUNDS rounds of a fraction of an epoch, and the paired float32/bf16 ratio."""
    rows = []
    for layers, batch_size, objective, k in PRECISION_ROWS:
        network = config.BURDA2015_TWO_LAYERS if layers == 2 else config.BURDA2015
        row_cfg = replaced(cfg, **network, objective=objective, k=k)
        fraction = EPOCH_FRACTION * (10 if k >= 50 else 1)
        count = len(dataset.train_images) // fraction
        works = [project_loop(row_cfg, dataset, device, batch_size, count, bf16=bf16)[0] for bf16 in (False, True)]
        rounds = timed_rounds(device, works, ROUNDS)
        float32, bfloat16 = (fraction * seconds for seconds in best_of(rounds))
        rows.append({"layers": layers, "batch": batch_size, "objective": f"{objective} k={k}", "float32": float32,
                     "bf16": bfloat16, "ratio": paired_ratio(rounds), "steps": fraction * math.ceil(count / batch_size)})
    return rows


def bound_row(cfg, dataset, device, samples, count):
    """Seconds of the importance-weighted bound with `samples` per image on `count` test images, of the decoder's
    multiplies for the same samples in the bound's chunks, and of the bound written out by hand: best of
    BOUND_ROUNDS each, and the paired ratios of the bound and of the hand-written bound to the multiplies."""
    model = vae(cfg, device)
    images = dataset.test_images[:count]
    rows_per_chunk = min(samples, SAMPLES_PER_CHUNK)
    floor_work = decoder_floor(model, count * samples, rows_per_chunk)
    importance_weighted_nll(model, images[:1], samples)  # warm-up
    handwritten_work = handwritten_bound(model, cfg.activation, images, samples)
    bound_work = functools.partial(importance_weighted_nll, model, images, samples)
    rounds = timed_rounds(device, [bound_work, floor_work, handwritten_work], BOUND_ROUNDS)
    return best_of(rounds), paired_ratio(rounds), paired_ratio(rounds, 2, 1)


def main():
    keys = ("dataset", "device", "seed", "learning_rate", "iw_samples", "data_root")
    cfg, _ = config.parse(keys, description=__doc__, script_defaults={"iw_samples": 5000})
    device = cli.resolve_device(cfg.device)
    burda_cfg = replaced(cfg, **config.BURDA2015)
    datasets = {"default": (cfg, data.load(cfg.dataset, cfg.data_root, device)),
                "burda2015": (burda_cfg, data.load(cfg.dataset, cfg.data_root, device, burda_cfg.binarize))}
    print(f"VAE on {cfg.dataset}; device: {device_name(device)}; torch {torch.__version__}")
    print("networks: default = 784-512-2 ReLU, Gaussian; burda2015 = 784-200-200-50 tanh, Bernoulli, dynamic "
          "binarisation\n")

    print(f"{'network':>10}{'batch':>7}{'objective':>13}{'(a) s/epoch':>13}{'(c) s/epoch':>13}{'(a) ms/step':>13}"
          f"{'(c) ms/step':>13}{'hand ms/step':>13}   a/c, hand/c (median of {ROUNDS}; range)")
    for row in training_rows(cfg, datasets, device):
        median, lowest, highest = row["ratio"]
        handwritten, hand_ratio = "-", ""
        if row["hand"] is not None:
            handwritten = f"{1000 * row['hand'] / row['steps']:.3f}"
            hand_ratio = ", {:.2f} ({:.2f}-{:.2f})".format(*row["hand_ratio"])
        print(f"{row['network']:>10}{row['batch']:>7}{row['objective']:>13}{row['a']:13.3f}{row['c']:13.3f}"
              f"{1000 * row['a'] / row['steps']:13.3f}{1000 * row['c'] / row['steps']:13.3f}{handwritten:>13}"
              f"   {median:.2f} ({lowest:.2f}-{highest:.2f}){hand_ratio}")

    _, dataset = datasets["burda2015"]
    print(f"\n--bf16 against float32, burda2015 networks; bfloat16 matrix units: {bf16_units(device)}")
    print(f"{'layers':>7}{'batch':>7}{'objective':>13}{'f32 ms/step':>13}{'bf16 ms/step':>13}"
          f"   f32/bf16 (median of {ROUNDS}; range): above 1, --bf16 is faster")
    for row in precision_rows(burda_cfg, dataset, device):
        print(f"{row['layers']:>7}{row['batch']:>7}{row['objective']:>13}{1000 * row['float32'] / row['steps']:13.2f}"
              f"{1000 * row['bf16'] / row['steps']:13.2f}   " + "{:.2f} ({:.2f}-{:.2f})".format(*row["ratio"]))

    count = min(BOUND_IMAGES, len(dataset.test_images))
    times, ratio, handwritten_ratio = bound_row(burda_cfg, dataset, device, cfg.iw_samples, count)
    bound, floor, handwritten = times
    scale = len(dataset.test_images) / count
    print(f"\nimportance-weighted bound, burda2015, k = {cfg.iw_samples}, {count} test images (x {scale:g} for the "
          f"test set): {bound:.2f} s ({bound * scale:.0f} s); decoder multiplies {floor:.2f} s ({floor * scale:.0f} s); "
          "ratio {:.2f} (median of {}; {:.2f}-{:.2f})".format(ratio[0], BOUND_ROUNDS, *ratio[1:]))
    print(f"the bound written out by hand: {handwritten:.2f} s ({handwritten * scale:.0f} s); ratio to the "
          "multiplies {:.2f} ({:.2f}-{:.2f})".format(*handwritten_ratio))


if __name__ == "__main__":
    cli.run(main)
