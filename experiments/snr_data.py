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
# Each figure of experiments.snr.gradient_figures with its standard error; rows measured before signal, noise and
# the effective sample size were recorded leave them empty.
FIGURES = ("snr", "vector_snr", "signal", "noise")
COLUMNS = ("checkpoint", "trained_by", "stage", "epochs", "estimator", "network", "k", "snr", "snr_se", "vector_snr",
           "vector_snr_se", "signal", "signal_se", "noise", "noise_se", "ess_per_k", "parameters", "images", "draws",
           "seed", "machine", "date", "command")
INTEGERS = ("stage", "epochs", "k", "parameters", "images", "draws", "seed")
FLOATS = ("snr", "snr_se", "vector_snr", "vector_snr_se", "signal", "signal_se", "noise", "noise_se", "ess_per_k")
NAMES = {"standard": "standard", "stl": "STL", "dreg": "DReG"}
LINES = (("standard", "inference"), ("stl", "inference"), ("dreg", "inference"), ("standard", "generative"))
DECADES = (1, 10, 100, 1000)  # the slopes are read decade by decade between these k of the grid
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
        results.write([{**row, **{key: f"{row[key]:.6g}" for key in FLOATS if row[key] is not None}} for row in rows],
                      path, COLUMNS, integers=INTEGERS, floats=FLOATS)


def control_name(nudge):
    return f"Gaussian control, nudge {nudge:g}"


def checkpoint_name(trained):
    """A checkpoint of the table's runs in words: "IWAE, k = 50, batch 100, ε 1e-08, seed 1, stage 1"."""
    where = f"stage {trained['stage']}" if trained["stage"] is not None else f"{trained['epochs']} epochs"
    return f"{row_name(trained)}, {setting_name(trained)}, {where}"


def per_decade(series, figure):
    """[(slope of log10 figure against log10 k over each decade of DECADES, its standard error) or None where the
    grid lacks an end or the figure is 0 there]; the error takes the two ends as independent (they share the seed, so
    it overstates)."""
    at = {row["k"]: (row[figure], row[f"{figure}_se"]) for row in series}
    slopes = []
    for low, high in zip(DECADES, DECADES[1:]):
        ends = [at.get(k, (None, None)) for k in (low, high)]
        if any(value is None or value <= 0 for value, _ in ends):
            slopes.append(None)
            continue
        (first, first_se), (last, last_se) = ends
        slopes.append((math.log10(last / first) / math.log10(high / low),
                       math.hypot(first_se / first, last_se / last) / math.log(10) / math.log10(high / low)))
    return slopes


def lines(rows):
    """{checkpoint: {(estimator, network): [rows by k]}}, the controls first, then by epochs; the generative
    network once (its gradient is the same under every estimator)."""
    found = {}
    for row in sorted(rows, key=lambda row: (row["epochs"], row["checkpoint"], row["k"])):
        if row["network"] == "inference" or row["estimator"] == "standard":
            found.setdefault(row["checkpoint"], {}).setdefault((row["estimator"], row["network"]), []).append(row)
    return found


def _slope_text(slope):
    return "–" if slope is None else f"{slope[0]:+.2f} ± {slope[1]:.2f}".replace("-", "−")


def _line_name(estimator, network):
    return f"{network}, {NAMES[estimator]}" if network == "inference" else f"{network} (every estimator)"


def _short(series):
    """A checkpoint as its column says it: "stage 1" for a stage of the table's runs, else its whole name."""
    row = next(iter(series.values()))[0]
    return f"stage {row['stage']}" if row["stage"] is not None else row["checkpoint"]


def vector_slopes(rows):
    """The floor-free SNR's (signal / noise) slope per decade of k, a line per checkpoint and gradient."""
    body = [[_short(series), _line_name(*key), *map(_slope_text, slopes)]
            for series in lines(rows).values() for key in LINES if key in series
            for slopes in [per_decade(series[key], "vector_snr")] if any(slopes)]
    decades = [f"k {low} → {high}" for low, high in zip(DECADES, DECADES[1:])]
    return markdown_table(["checkpoint", "gradient", *decades], body)


def parts(rows):
    """The standard gradient's signal and noise, each's slope per decade, and the weights' ESS / k, by checkpoint."""
    body = []
    for series in lines(rows).values():
        for network in ("inference", "generative"):
            found = series.get(("standard", network), [])
            if not any(row["ess_per_k"] is not None for row in found):  # measured before these were recorded
                continue
            ess = {row["k"]: row["ess_per_k"] for row in found}
            body.append([_short(series), network, *(", ".join(map(_slope_text, per_decade(found, figure)))
                                                         for figure in ("signal", "noise")),
                         ", ".join("–" if ess.get(k) is None else f"{ess[k]:.3f}" for k in DECADES[1:])])
    return markdown_table(["checkpoint", "network", "signal, per decade", "noise, per decade",
                           "ESS / k at k = 10, 100, 1000"], body)


def at_trained_k(rows):
    """The inference network's SNR at the k the table's IWAE rows train with, by estimator and checkpoint."""
    body = []
    for series in lines(rows).values():
        found = {estimator: next((row for row in series.get((estimator, "inference"), []) if row["k"] == TRAINED_K),
                                 None) for estimator in NAMES}
        body.append([_short(series)] + [f"{row['snr']:.3f} ± {row['snr_se']:.3f}" if row else "–"
                                            for row in found.values()])
    return markdown_table(["checkpoint", *NAMES.values()], body)


TABLES = {"snr-slopes": vector_slopes, "snr-parts": parts, "snr-at-k50": at_trained_k}


def figure(rows, path=FIGURE):
    """SNR against k on log-log axes, a panel per checkpoint, one y-range a row: above, Rainforth et al.'s mean SNR
    over parameters with its floor (about 0.8 / sqrt(draws) for a gradient of mean 0); below, the floor-free signal
    / noise, with slopes of +-1/2 through the standard gradients' k = 1 points. Error bars from the groups of draws.
    Checkpoints measured before signal and noise were recorded are left out."""
    from matplotlib.figure import Figure

    found = {checkpoint: series for checkpoint, series in lines(rows).items()
             if all(row["vector_snr"] is not None for points in series.values() for row in points)}
    fig = Figure(figsize=(3.6 * max(len(found), 1), 7.4))
    grid = fig.subplots(2, max(len(found), 1), squeeze=False, sharey="row", sharex=True)
    styles = {("standard", "inference"): ("C0", "o"), ("stl", "inference"): ("C1", "s"),
              ("dreg", "inference"): ("C2", "^"), ("standard", "generative"): ("black", "D")}
    for column, series in enumerate(found.values()):
        draws = next(iter(series.values()))[0]["draws"]
        for axes, figure in zip(grid[:, column], ("snr", "vector_snr")):
            for key, points in series.items():
                ks = [row["k"] for row in points]
                axes.errorbar(ks, [row[figure] for row in points], yerr=[row[f"{figure}_se"] for row in points],
                              color=styles[key][0], marker=styles[key][1], markersize=3, capsize=2,
                              linestyle="--" if key[1] == "generative" else "-", label=_line_name(*key))
                if figure == "vector_snr" and key[0] == "standard" and ks[0] == 1:
                    slope = 0.5 if key[1] == "generative" else -0.5
                    axes.plot(ks, [points[0][figure] * k ** slope for k in ks], color="grey", linestyle=":",
                              label="slope ±1/2" if slope > 0 else None)
            if figure == "snr":
                axes.axhline(0.8 / math.sqrt(draws), color="red", linewidth=0.8, linestyle=":",
                             label="floor, 0.8 / sqrt(draws)")
            axes.set(xscale="log", yscale="log")
            axes.grid(alpha=0.3, which="both")
        grid[0, column].set_title(_short(series), fontsize=9)
        grid[1, column].set_xlabel("k, samples of z per image")
    grid[0, 0].set_ylabel("mean over parameters of |mean| / sd")
    grid[1, 0].set_ylabel("signal / noise: |E g| / sqrt(tr Cov g)")
    handles = {label: handle for axes in grid.flat for handle, label in zip(*axes.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
