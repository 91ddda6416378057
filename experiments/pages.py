"""The pages' tables and figures, written from the data in results/: Table 1 from results/burda2015.csv
(experiments/results.py), the gradients' SNR from results/snr.csv (experiments/snr_data.py). Each generated block
sits between two markers on its page, and nothing inside them is written by hand.

    python -m experiments.pages      # rewrite the tables of README.md, docs/literature.md and docs/snr.md, and the figures
"""
import re

import statistics

from experiments import snr_data
from files import atomic_paths

from experiments.results import (DEFAULT_SEED, NBIP, PAPER, ROOT, ROW_ORDER, SETTING, TABLE1, THIS_REPO, XQDING, read, row_name,
                                setting_name)

FIGURE = ROOT / "plots" / "readme" / "burda2015_table1.png"
PAGES = (ROOT / "README.md", ROOT / "docs" / "literature.md", ROOT / "docs" / "snr.md")
BEGIN, END = "<!-- generated from the data in results/ by `python -m experiments.pages`: {} -->", \
    "<!-- end of generated table -->"


FLOAT32 = "float32"
# The single-run columns and the figure: the seed and precision every row had before either was varied.
ONE_RUN = {"seed": DEFAULT_SEED, "precision": FLOAT32}


def _value(mean, se):
    return f"{mean:.2f} ± {se:.2f}" if se is not None else f"{mean:.2f}"


def _table(header, lines):
    return "\n".join([f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
                     + [f"| {' | '.join(line)} |" for line in lines])


def _matching(rows, **match):
    return [row for row in rows if all(row[key] == value for key, value in match.items())]


def _latest(rows, **match):
    found = _matching(rows, **match)
    return max(found, key=lambda row: row["date"]) if found else None


def _furthest(rows, **match):
    """The matching row of the furthest stage (the latest of it), or None."""
    found = _matching(rows, **match)
    return max(found, key=lambda row: (row["stage"], row["date"])) if found else None


def _published(row):
    """A published figure, with its active units where the source gives them: "86.76 (19)"; "–" for no row."""
    if not row:
        return "–"
    return f"{row['nll']:.2f}" + (f" ({row['active_units']})" if row["active_units"] else "")


def table1(rows):
    """README: each of Table 1's one-layer rows, the paper's and nbip/IWAE's figure beside this repo's at stage 4 in
    the experiments command's setting and at the furthest stage it reached in any setting."""
    lines = []
    for objective, k, estimator in TABLE1:
        row = {"layers": 1, "objective": objective, "k": k, "estimator": estimator}
        paper, nbip = _latest(rows, source=PAPER, **row), _latest(rows, source=NBIP, **row)
        stage4 = _latest(rows, source=THIS_REPO, stage=4, **ONE_RUN, **row, **SETTING)
        furthest = _furthest(rows, source=THIS_REPO, **ONE_RUN, **row)
        spread = _over_seeds(rows, source=THIS_REPO, stage=4, precision=FLOAT32, **row, **SETTING)
        lines.append([row_name(row), _published(paper), _published(nbip),
                      f"**{_value(stage4['nll'], stage4['nll_se'])}** ({stage4['active_units']})",
                      f"{spread[0]:.2f} ± {spread[1]:.2f} ({len(spread[2])} seeds)" if spread else "–",
                      f"{_value(furthest['nll'], furthest['nll_se'])}: stage {furthest['stage']}, "
                      f"{setting_name(furthest)}"])
    return _table(["row", "Burda et al., 3,280 epochs (active units)", "nbip/IWAE, 3,280 epochs",
                   f"this repo, stage 4 (121 epochs), batch 100, seed {DEFAULT_SEED} (active units)",
                   "same, mean ± sd over seeds", "this repo, furthest stage"], lines)


def _over_seeds(rows, **match):
    """(mean, sd, the runs) of the matching rows' −log p(x) over seeds, the latest run of each seed; None for fewer
    than two seeds."""
    by_seed = {}
    for row in sorted(_matching(rows, **match), key=lambda row: row["date"]):
        by_seed[row["seed"]] = row
    runs = [by_seed[seed] for seed in sorted(by_seed)]
    if len(runs) < 2:
        return None
    figures = [row["nll"] for row in runs]
    return statistics.mean(figures), statistics.stdev(figures), runs


def seeds(rows):
    """Every row and stage measured with several seeds: each seed's figure ± its test-set standard error, and the mean
    ± standard deviation over the seeds."""
    grouped_by = ("layers", "objective", "k", "estimator", *SETTING, "precision", "stage")
    groups = dict.fromkeys(tuple(row[key] for key in grouped_by) for row in _matching(rows, source=THIS_REPO))
    lines = []
    for group in groups:
        match = dict(zip(grouped_by, group))
        spread = _over_seeds(rows, source=THIS_REPO, **match)
        if spread:
            mean, sd, runs = spread
            lines.append([f"{row_name(match)}, {setting_name(match)}", f"{match['stage']} ({runs[0]['epochs']:,})",
                          "; ".join(f"{row['seed']}: {_value(row['nll'], row['nll_se'])}" for row in runs),
                          f"**{mean:.2f} ± {sd:.2f}** ({len(runs)} seeds)",
                          "; ".join(sorted({f"{row['machine']}, {row['date']}" for row in runs}))])
    lines.sort(key=lambda line: line[:2])
    return _table(["row, setting", "stage (epochs)", "−log p(x) by seed, nats ± standard error",
                   "mean ± sd over seeds", "machines, dates"], lines)


def _measured(rows, header_first, first):
    lines = [[first(row), f"{row['stage']} ({row['epochs']:,})", _value(row["nll"], row["nll_se"])
              + (f" ({row['nll_k100']:.2f})" if row["nll_k100"] else ""), _value(row["neg_elbo"], row["neg_elbo_se"]),
              row["active_units"], f"{row['train_minutes']:g} min", f"{row['machine']}, {row['date']}",
              f"`{row['command']}`" + (f"; {row['note']}" if row["note"] else "")] for row in rows]
    return _table([header_first, "stage (epochs)", "−log p(x), nats, k = 5000 (k = 100)", "−ELBO, nats",
                   "active units", "training", "machine, date", "command"], lines)


def settings_at_stage4(rows):
    """The VAE with k = 1 at stage 4 in every setting measured: batch size, Adam's ε and β1, initialisation."""
    chosen = _matching(rows, source=THIS_REPO, layers=1, objective="elbo", k=1, stage=4)
    chosen.sort(key=lambda row: (-row["batch_size"], row["adam_eps"], row["init"], row["adam_beta1"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def schedule(rows):
    """The VAE with k = 1 through the schedule's other stages, by setting."""
    chosen = [row for row in _matching(rows, source=THIS_REPO, layers=1, objective="elbo", k=1) if row["stage"] != 4]
    chosen.sort(key=lambda row: (setting_name(row), row["stage"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def other_rows(rows):
    """Table 1's rows beyond the VAE with k = 1, every stage measured."""
    return _by_row([row for row in _matching(rows, source=THIS_REPO, layers=1)
                    if (row["objective"], row["k"]) != ("elbo", 1)])


def _by_row(chosen):
    """Measured rows in Table 1's order, each row's stages in order."""
    chosen.sort(key=lambda row: (ROW_ORDER.index((row["objective"], row["k"], row["estimator"])), row["stage"]))
    return _measured(chosen, "row, setting", lambda row: f"{row_name(row)}, {setting_name(row)}")


# The two-layer table's setting: the authors' initialisation, without which the two-layer model leaves most of its
# units unused (docs/literature.md); batch 100 and Adam's eps as in the one-layer table.
TWO_LAYER_SETTING = {**SETTING, "init": "glorot-mean"}


def two_layers(rows):
    """Table 1's two-layer rows: the published figures beside this repo's at the furthest stage it reached in
    TWO_LAYER_SETTING, and this repo's one-layer row at that stage and setting."""
    lines = []
    for objective, k, estimator in TABLE1:
        row = {"objective": objective, "k": k, "estimator": estimator}
        paper, nbip, xqding = (_latest(rows, source=source, layers=2, **row) for source in (PAPER, NBIP, XQDING))
        two = _furthest(rows, source=THIS_REPO, layers=2, **ONE_RUN, **row, **TWO_LAYER_SETTING)
        one = _latest(rows, source=THIS_REPO, layers=1, stage=two["stage"], **ONE_RUN, **row,
                      **TWO_LAYER_SETTING) if two else None
        lines.append([row_name(row), *map(_published, (paper, nbip, xqding)),
                      f"**{_value(two['nll'], two['nll_se'])}** ({two['active_units']}), stage {two['stage']}"
                      if two else "not yet measured",
                      f"{_value(one['nll'], one['nll_se'])} ({one['active_units']})" if one else "–"])
    return _table(["row", "Burda et al., 3,280 epochs (active units)", "nbip/IWAE, 3,280 epochs",
                   "xqding (PyTorch, batch 1000), 5,000 epochs",
                   "this repo, two layers, batch 100, glorot-mean (active units)",
                   "this repo, one layer, same stage and setting"], lines)


def two_layer_stages(rows):
    """This repo's two-layer rows, every stage measured."""
    return _by_row(_matching(rows, source=THIS_REPO, layers=2))


def published(rows):
    """Every published row, as its source gives it."""
    chosen = [row for row in rows if row["source"] != THIS_REPO]
    lines = [[row["source"], str(row["layers"]), row_name(row), f"{row['epochs']:,}", f"{row['nll']:.2f}",
              row["active_units"] or "–", row["note"]] for row in chosen]
    return _table(["source", "stochastic layers", "row", "epochs", "−log p(x), nats", "active units", "setting"], lines)


TABLES = {"table1": table1, "settings-at-stage-4": settings_at_stage4, "schedule": schedule,
          "other-rows": other_rows, "seeds": seeds, "two-layers": two_layers, "two-layer-stages": two_layer_stages,
          "published": published}


def render(page_text, rows, snr_rows=None):
    """The page with each generated block rewritten from the data: Table 1's `rows`, and the SNR's (by default,
    results/snr.csv's)."""
    snr_rows = snr_data.read() if snr_rows is None else snr_rows

    def block(match):
        name = match[1]
        text = TABLES[name](rows) if name in TABLES else snr_data.TABLES[name](snr_rows)
        return f"{BEGIN.format(name)}\n{text}\n{END}"

    pattern = re.escape(BEGIN).replace(r"\{\}", r"([\w-]+)") + r"\n.*?" + re.escape(END)
    return re.sub(pattern, block, page_text, flags=re.S)


def figure(rows, path=FIGURE):
    """-log p(x) against epochs: a line per row and setting of this repo through its stages (the latest measurement
    of each), the paper's and nbip/IWAE's 3,280-epoch figures marked at the right."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.5))
    ax = fig.subplots()
    ours = sorted((row for row in rows if row["source"] == THIS_REPO and row["layers"] == 1
                   and all(row[key] == value for key, value in ONE_RUN.items())), key=lambda row: row["date"])
    for index, key in enumerate(TABLE1):
        colour = f"C{index}"
        paper, nbip = (_latest(rows, source=source, layers=1, objective=key[0], k=key[1], estimator=key[2])
                       for source in (PAPER, NBIP))
        if paper:
            ax.plot([2400, 4400], [paper["nll"]] * 2, color=colour, linewidth=2.5)
        if nbip:
            ax.plot([3280], [nbip["nll"]], marker="x", markersize=7, color=colour, linestyle="none")
        lines = {}
        for row in [row for row in ours if (row["objective"], row["k"], row["estimator"]) == key]:
            lines.setdefault(setting_name(row), {})[row["stage"]] = row  # sorted by date: the latest stays
        for style, (setting, stages) in zip(("-", "--", ":", "-.") * 4, sorted(lines.items(), key=lambda s: -len(s[1]))):
            points = sorted((row["epochs"], row["nll"]) for row in stages.values())
            ax.plot(*zip(*points), marker="o", markersize=3, linestyle=style, color=colour,
                    label=f"{row_name(dict(zip(('objective', 'k', 'estimator'), key)))}: {setting}")
    ax.plot([], [], color="grey", linewidth=2.5, label="Burda et al. 2015, 3,280 epochs")
    ax.plot([], [], marker="x", color="grey", linestyle="none", label="nbip/IWAE, 3,280 epochs")
    ax.set(xscale="log", xlabel="epochs (log scale; stage i ends at 1 + 3 + ... + 3^i)", xlim=(25, 5000),
           ylabel="−log p(x), nats (k = 5000)", ylim=(84, 97),
           title="Burda et al.'s Table 1, one stochastic layer, dynamically binarised MNIST: this repo's stages")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)

def main():
    rows, snr_rows = read(), snr_data.read()
    figures = (FIGURE, snr_data.FIGURE)
    with atomic_paths([*PAGES, *figures]) as temporaries:  # the pages and the figures all new, or all as they were
        for page, temporary in zip(PAGES, temporaries):
            temporary.write_text(render(page.read_text(), rows, snr_rows))
        figure(rows, temporaries[len(PAGES)])
        snr_data.figure(snr_rows, temporaries[len(PAGES) + 1])
    print(f"wrote the tables of {', '.join(str(page.relative_to(ROOT)) for page in PAGES)} and the figures "
          f"{', '.join(str(path.relative_to(ROOT)) for path in figures)}")


if __name__ == "__main__":
    main()
