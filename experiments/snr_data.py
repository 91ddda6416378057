"""The gradients' SNR as data: results/snr.csv, which experiments/snr.py measures, and what the pages show of it (the
slopes' tables and the figure, written by `python -m experiments.pages`). No torch here.
"""
import math
from pathlib import Path

from experiments import results
from experiments.results import ROOT, row_name, setting_name
from experiments.tables import markdown_table
from files import exclusive_lock

DATA = ROOT / "results" / "snr.csv"
FIGURE = ROOT / "plots" / "readme" / "snr.png"
COLUMNS = ("checkpoint", "trained_by", "stage", "epochs", "estimator", "network", "k", "snr", "snr_se", "parameters",
           "images", "draws", "seed", "machine", "date", "command")
INTEGERS, FLOATS = ("stage", "epochs", "k", "parameters", "images", "draws", "seed"), ("snr", "snr_se")
NAMES = {"standard": "standard", "stl": "STL", "dreg": "DReG"}
# What the papers say of each slope of log SNR against log k. The generative network's gradient is the same under
# all three estimators (they differ in the encoder's only), so it has one line.
PAPERS = {("standard", "inference"): "−1/2 for large k (Rainforth et al., Theorem 1)",
          ("stl", "inference"): "not given (biased for k > 1: Tucker et al.)",
          ("dreg", "inference"): "rises with k (Tucker et al.)",
          ("standard", "generative"): "+1/2 for large k (Rainforth et al., Theorem 1)"}
TRAINED_K = 50  # the table's IWAE rows train with k = 50: the pages compare the estimators there


def read(path=DATA):
    """The rows of the SNR data, typed and checked as results.read checks Table 1's; none before the first."""
    return results.read(path, COLUMNS, INTEGERS, FLOATS) if Path(path).exists() else []


def replace(new_rows, path=DATA):
    """Put `new_rows` in the data in place of every earlier row of their checkpoints, whole or not at all, under a
    lock beside the file (measurements that finish together both land)."""
    path = Path(path)
    measured = {row["checkpoint"] for row in new_rows}
    with exclusive_lock(path.with_name(f".{path.name}.lock"), wait=True):
        rows = [row for row in read(path) if row["checkpoint"] not in measured] + list(new_rows)
        results.write([{**row, "snr": f"{row['snr']:.6g}", "snr_se": f"{row['snr_se']:.6g}"} for row in rows], path,
                      COLUMNS, integers=INTEGERS, floats=FLOATS)


def checkpoint_name(trained):
    """A checkpoint of the table's runs in words: "IWAE, k = 50, batch 100, ε 1e-08, seed 1, stage 1"."""
    where = f"stage {trained['stage']}" if trained["stage"] is not None else f"{trained['epochs']} epochs"
    return f"{row_name(trained)}, {setting_name(trained)}, {where}"


def slope(points):
    """(slope, its standard error) of the least-squares line through (log10 k, log10 SNR) for the (k, SNR) points;
    the error from the residuals, so None for fewer than three points."""
    xs, ys = zip(*((math.log10(k), math.log10(snr)) for k, snr in points))
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    fitted = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
    if len(xs) < 3:
        return fitted, None
    residual = sum((y - mean_y - fitted * (x - mean_x)) ** 2 for x, y in zip(xs, ys)) / (len(xs) - 2)
    return fitted, math.sqrt(residual / spread)


def lines(rows):
    """{checkpoint: {(estimator, network): [rows by k]}}, checkpoints by epochs, the generative network once."""
    found = {}
    for row in sorted(rows, key=lambda row: (row["epochs"], row["k"])):
        if row["network"] == "inference" or row["estimator"] == "standard":
            found.setdefault(row["checkpoint"], {}).setdefault((row["estimator"], row["network"]), []).append(row)
    return found


def _slope_text(series):
    fitted, error = slope([(row["k"], row["snr"]) for row in series])
    return f"{fitted:+.2f}".replace("-", "−") + (f" ± {error:.2f}" if error is not None else "")


def _line_name(estimator, network):
    return f"{network}, {NAMES[estimator]}" if network == "inference" else f"{network} (every estimator)"


def _stage(series):
    return f"stage {series[0]['stage']}" if series[0]["stage"] is not None else f"{series[0]['epochs']} epochs"


def slopes(rows):
    """The table of fitted slopes: a line per estimator and network, a column per checkpoint, the papers' beside."""
    found = lines(rows)
    header = [_stage(next(iter(series.values()))) for series in found.values()]
    body = [[_line_name(*key)] + [_slope_text(series[key]) if key in series else "–" for series in found.values()]
            + [PAPERS[key]] for key in PAPERS]
    return markdown_table(["network, estimator", *header, "the papers"], body)


def at_trained_k(rows):
    """The inference network's SNR at the k the table's IWAE rows train with, by estimator and checkpoint."""
    body = []
    for series in lines(rows).values():
        found = {estimator: next((row for row in series.get((estimator, "inference"), []) if row["k"] == TRAINED_K),
                                 None) for estimator in NAMES}
        body.append([_stage(next(iter(series.values())))] + [
            f"{row['snr']:.3f} ± {row['snr_se']:.3f}" if row else "–" for row in found.values()])
    return markdown_table(["checkpoint", *NAMES.values()], body)


TABLES = {"snr-slopes": slopes, "snr-at-k50": at_trained_k}


def figure(rows, path=FIGURE):
    """SNR against k on log-log axes, a panel per checkpoint: a line per estimator for the inference network, one
    for the generative network, each with its fitted slope; error bars are the jackknife standard errors."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    found = lines(rows)
    fig = Figure(figsize=(6 * max(len(found), 1), 4.8))
    axes = fig.subplots(1, max(len(found), 1), squeeze=False)[0]
    styles = {("standard", "inference"): ("C0", "o"), ("stl", "inference"): ("C1", "s"),
              ("dreg", "inference"): ("C2", "^"), ("standard", "generative"): ("black", "D")}
    for ax, (checkpoint, series) in zip(axes, found.items()):
        for key, points in series.items():
            colour, marker = styles[key]
            ax.errorbar([row["k"] for row in points], [row["snr"] for row in points],
                        yerr=[row["snr_se"] for row in points], color=colour, marker=marker, markersize=4, capsize=2,
                        linestyle="--" if key[1] == "generative" else "-",
                        label=f"{_line_name(*key)}: slope {_slope_text(points)}")
        ax.set(xscale="log", yscale="log", xlabel="k, samples of z per image", title=checkpoint)
        ax.title.set_fontsize(9)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("SNR: mean over parameters of |mean| / sd")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
