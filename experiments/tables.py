"""The pages' tables of Table 1, written from results/burda2015.csv by `python -m experiments.pages`: every column one
setting, named in its header."""
import math
import statistics

from experiments.results import (DEFAULT_SEED, HEADLINE_STAGE, NBIP, ONE_RUN, PAPER, PAPER_SETTING, PRECISION,
                                 ROW_ORDER, SETTING, TABLE1, THIS_REPO, TWO_LAYER_SETTING, XQDING, furthest, latest,
                                 matching, row_name, setting_name)


def _value(mean, se):
    return f"{mean:.2f} ± {se:.2f}" if se is not None else f"{mean:.2f}"


def markdown_table(header, lines):
    return "\n".join([f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
                     + [f"| {' | '.join(line)} |" for line in lines])


def _published(row):
    """A published figure, with its active units where the source gives them: "86.76 (19)"; "–" for no row."""
    if not row:
        return "–"
    return f"{row['nll']:.2f}" + (f" ({row['active_units']})" if row["active_units"] else "")


INITS = {"torch": "PyTorch's initialisation", "glorot": "Glorot's weights", "glorot-mean": "the authors' initialisation"}


def setting_in_full(setting):
    """A setting named in full: "batch 100, Adam ε 1e-08, PyTorch's initialisation" (β1 where it is not 0.9)."""
    beta1 = f", β1 {setting['adam_beta1']:g}" if setting["adam_beta1"] != SETTING["adam_beta1"] else ""
    return f"batch {setting['batch_size']}, Adam ε {setting['adam_eps']:g}, {INITS[setting['init']]}{beta1}"


def _measured_cell(row, stage_named=False):
    if not row:
        return "–"
    return f"{_value(row['nll'], row['nll_se'])} ({row['active_units']})" + (
        f", stage {row['stage']} ({row['epochs']:,} epochs)" if stage_named else "")


def table1(rows, layers=1, setting=SETTING):
    """Each of Table 1's rows: the paper's and nbip/IWAE's figures, this repo's at stage 4 in `setting` (one run and
    the spread over seeds), and in the paper's setting at the furthest stage it reached; "–" where a row has not run."""
    lines = []
    for objective, k, estimator in TABLE1:
        row = {"layers": layers, "objective": objective, "k": k, "estimator": estimator}
        ours = dict(source=THIS_REPO, **row)
        stage4 = latest(rows, stage=HEADLINE_STAGE, **ONE_RUN, **ours, **setting)
        spread = _over_seeds(rows, stage=HEADLINE_STAGE, precision=PRECISION[False], **ours, **setting)
        lines.append([row_name(row), _published(latest(rows, source=PAPER, **row)),
                      _published(latest(rows, source=NBIP, **row)),
                      f"**{_measured_cell(stage4)}**" if stage4 else "–",
                      f"{spread[0]:.2f} ± {spread[1]:.2f} ({len(spread[2])} seeds)" if spread else "–",
                      _measured_cell(furthest(rows, **ONE_RUN, **ours, **PAPER_SETTING), stage_named=True)])
    epochs = sum(3 ** stage for stage in range(HEADLINE_STAGE + 1))
    return markdown_table(["row", "Burda et al.: batch 20, 3,280 epochs (active units)",
                           "nbip/IWAE: batch 20, 3,280 epochs",
                           f"this repo: {setting_in_full(setting)}, stage {HEADLINE_STAGE} ({epochs} epochs), seed "
                           f"{DEFAULT_SEED} (active units)", "same setting and stage: mean ± sd over seeds",
                           f"this repo, the paper's setting: {setting_in_full(PAPER_SETTING)}, furthest stage run"],
                          lines)


def two_layers_table1(rows):
    """Table 1's two-layer half as table1 gives the one-layer half, at stage 4 in the two-layer setting."""
    return table1(rows, layers=2, setting=TWO_LAYER_SETTING)


def _over_seeds(rows, **match):
    """(mean, sd, the runs) of the matching rows' −log p(x) over seeds, the latest run of each seed; None for fewer
    than two seeds."""
    by_seed = {}
    for row in sorted(matching(rows, **match), key=lambda row: row["date"]):
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
    groups = dict.fromkeys(tuple(row[key] for key in grouped_by) for row in matching(rows, source=THIS_REPO))
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
    return markdown_table(["row, setting", "stage (epochs)", "−log p(x) by seed, nats ± standard error",
                           "mean ± sd over seeds", "machines, dates"], lines)


def _measured(rows, header_first, first):
    lines = [[first(row), f"{row['stage']} ({row['epochs']:,})", _value(row["nll"], row["nll_se"])
              + (f" ({row['nll_k100']:.2f})" if row["nll_k100"] else ""), _value(row["neg_elbo"], row["neg_elbo_se"]),
              row["active_units"], f"{row['train_minutes']:g} min", f"{row['machine']}, {row['date']}",
              f"`{row['command']}`" + (f"; {row['note']}" if row["note"] else "")] for row in rows]
    return markdown_table([header_first, "stage (epochs)", "−log p(x), nats, k = 5000 (k = 100)", "−ELBO, nats",
                           "active units", "training", "machine, date", "command"], lines)


def settings_at_stage4(rows):
    """The VAE with k = 1 at stage 4 in every setting measured: batch size, Adam's ε and β1, initialisation."""
    chosen = matching(rows, source=THIS_REPO, layers=1, objective="elbo", k=1, stage=4)
    chosen.sort(key=lambda row: (-row["batch_size"], row["adam_eps"], row["init"], row["adam_beta1"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def schedule(rows):
    """The VAE with k = 1 through the schedule's other stages, by setting."""
    chosen = [row for row in matching(rows, source=THIS_REPO, layers=1, objective="elbo", k=1) if row["stage"] != 4]
    chosen.sort(key=lambda row: (setting_name(row), row["stage"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def other_rows(rows):
    """Table 1's rows beyond the VAE with k = 1, every stage measured."""
    return _by_row([row for row in matching(rows, source=THIS_REPO, layers=1)
                    if (row["objective"], row["k"]) != ("elbo", 1)])


def _by_row(chosen):
    """Measured rows in Table 1's order, each row's stages in order."""
    chosen.sort(key=lambda row: (ROW_ORDER.index((row["objective"], row["k"], row["estimator"])), row["stage"]))
    return _measured(chosen, "row, setting", lambda row: f"{row_name(row)}, {setting_name(row)}")


def two_layers(rows):
    """Table 1's two-layer rows: the published figures (xqding's too) beside this repo's at stage 4 in
    TWO_LAYER_SETTING, and this repo's one-layer row at that stage and setting."""
    lines = []
    for objective, k, estimator in TABLE1:
        row = {"objective": objective, "k": k, "estimator": estimator}
        ours = dict(source=THIS_REPO, stage=HEADLINE_STAGE, **ONE_RUN, **row, **TWO_LAYER_SETTING)
        two, one = latest(rows, layers=2, **ours), latest(rows, layers=1, **ours)
        lines.append([row_name(row), *(_published(latest(rows, source=source, layers=2, **row))
                                       for source in (PAPER, NBIP, XQDING)),
                      f"**{_measured_cell(two)}**" if two else "–", _measured_cell(one)])
    setting = f"{setting_in_full(TWO_LAYER_SETTING)}, stage {HEADLINE_STAGE}, seed {DEFAULT_SEED}"
    return markdown_table(["row", "Burda et al.: batch 20, 3,280 epochs (active units)",
                           "nbip/IWAE: batch 20, 3,280 epochs",
                           "xqding (PyTorch): batch 1000, 5,000 epochs",
                           f"this repo, two layers: {setting} (active units)",
                           "this repo, one layer, same setting and stage"], lines)


def two_layer_stages(rows):
    """This repo's two-layer rows, every stage measured."""
    return _by_row(matching(rows, source=THIS_REPO, layers=2))


def removal_checks(rows):
    """Every row measured with Burda et al.'s removal check: the bound's change with the inactive units removed."""
    chosen = [row for row in matching(rows, source=THIS_REPO) if row["removal_nats"] is not None]
    chosen.sort(key=lambda row: (row["layers"], ROW_ORDER.index((row["objective"], row["k"], row["estimator"])),
                                 setting_name(row), row["stage"]))
    lines = [[f"{row_name(row)}, {setting_name(row)}", f"{row['stage']} ({row['epochs']:,})",
              _value(row["nll"], row["nll_se"]), row["active_units"], row["units_removed"],
              f"{row['removal_nats']:+.3f} ± {row['removal_se']:.3f}", f"{row['machine']}, {row['date']}",
              f"`{row['command']}`"] for row in chosen]
    return markdown_table(["row, setting", "stage (epochs)", "−log p(x), nats, k = 5000", "active units",
                           "inactive units removed", "the bound's change without them, nats", "machine, date",
                           "command"], lines) if lines else "No row measured with the removal check yet."


def gap(first, second):
    """first's bound less second's: (nats, the same in combined standard errors)."""
    difference = first["nll"] - second["nll"]
    return difference, difference / math.hypot(first["nll_se"], second["nll_se"])


def _difference(first, second):
    """first's bound less second's as a cell: "+0.30 (+0.9 combined SE)"."""
    return "{:+.2f} ({:+.1f} combined SE)".format(*gap(first, second))


def _trained(row):
    return f"{row['train_minutes']:g} min ({row['machine']}, {row['date']})"


# What makes two of this repo's runs the same run but for their precision: Table 1's row, the setting and the seed.
SAME_RUN = ("layers", "objective", "k", "estimator", *SETTING, "seed")


def precisions(rows):
    """Every row and stage trained under --bf16 beside the same row, setting, seed and stage in float32: both bounds
    (evaluated in float32), their difference, and the training minutes to that stage."""
    lines = []
    for bf16 in matching(rows, source=THIS_REPO, precision=PRECISION[True]):
        float32 = latest(rows, source=THIS_REPO, precision=PRECISION[False],
                         **{key: bf16[key] for key in (*SAME_RUN, "stage")})
        lines.append([f"{row_name(bf16)}, {setting_name({**bf16, 'precision': PRECISION[False]})}",
                      f"{bf16['stage']} ({bf16['epochs']:,})",
                      _value(float32["nll"], float32["nll_se"]) if float32 else "–", _value(bf16["nll"], bf16["nll_se"]),
                      _difference(bf16, float32) if float32 else "–", _trained(float32) if float32 else "–",
                      _trained(bf16), f"`{bf16['command']}`"])
    lines.sort(key=lambda line: line[:2])
    return markdown_table(["row, setting", "stage (epochs)", "float32: −log p(x), nats", "--bf16: −log p(x), nats",
                           "bf16 − float32", "float32: training to this stage", "--bf16: training to this stage",
                           "command (--bf16)"], lines) if lines else "No row trained under --bf16 yet."


def published(rows):
    """Every published row, as its source gives it."""
    chosen = [row for row in rows if row["source"] != THIS_REPO]
    lines = [[row["source"], str(row["layers"]), row_name(row), f"{row['epochs']:,}", f"{row['nll']:.2f}",
              row["active_units"] or "–", row["note"]] for row in chosen]
    return markdown_table(["source", "stochastic layers", "row", "epochs", "−log p(x), nats", "active units",
                           "setting"], lines)


TABLES = {"table1": table1, "two-layers-table1": two_layers_table1, "settings-at-stage-4": settings_at_stage4,
          "schedule": schedule, "other-rows": other_rows, "seeds": seeds, "two-layers": two_layers,
          "two-layer-stages": two_layer_stages, "removal-checks": removal_checks, "precisions": precisions,
          "published": published}
