"""The pages' tables, written from results/burda2015.csv by `python -m experiments.pages`. Each shows numbers only:
what they say is written by hand on the page, and tests/test_claims.py holds each such claim against the data."""
import statistics

from experiments.results import (ACTIVE_STATISTICS, HEADLINE_STAGE, NBIP, ONE_RUN, PAPER, PAPER_SETTING, PRECISION,
                                 ROW_ORDER, SETTING, TABLE1, THIS_REPO, TWO_LAYER_SETTING, furthest, latest, matching,
                                 row_name, setting_name)

HEADLINE = {1: SETTING, 2: TWO_LAYER_SETTING}  # each half of Table 1's setting at the headline stage, by layers
ROW_KEY = ("objective", "k", "estimator")  # Table 1's row; TABLE1 lists them as tuples in this order


def markdown_table(header, lines):
    return "\n".join([f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
                     + [f"| {' | '.join(line)} |" for line in lines])


def bound(row):
    """"91.35 ± 0.25" (± the test set's standard error); "–" for no row."""
    if not row:
        return "–"
    return f"{row['nll']:.2f}" + (f" ± {row['nll_se']:.2f}" if row["nll_se"] is not None else "")


def active(row):
    """A row's active units by Burda et al.'s statistic, as the paper counts them; "–" for no row or another one."""
    return row["active_units"] if row and row["active_statistic"] == ACTIVE_STATISTICS[0] else "–"


def ours(rows, layers, key, stage=HEADLINE_STAGE, setting=None, **match):
    """This repo's row of Table 1's `key` (objective, k, estimator) at `stage` in `setting` (the headline one by
    default), seed 1337 in float32 unless `match` says otherwise."""
    return latest(rows, source=THIS_REPO, layers=layers, stage=stage, **dict(zip(ROW_KEY, key)),
                  **{**ONE_RUN, **match}, **(setting or HEADLINE[layers]))


def published(rows, source, layers, key):
    return latest(rows, source=source, layers=layers, **dict(zip(ROW_KEY, key)))


def spread(rows, layers, key, stage=HEADLINE_STAGE, setting=None):
    """Table 1's `key` at `stage` in `setting` (the headline ones by default) over seeds (over_seeds), in float32."""
    return over_seeds(rows, source=THIS_REPO, layers=layers, stage=stage, precision=PRECISION[False],
                      **dict(zip(ROW_KEY, key)), **(setting or HEADLINE[layers]))


def over_seeds(rows, **match):
    """(mean, sd, number of seeds) of the matching rows' −log p(x), the latest row of each seed; None for fewer than
    two seeds."""
    by_seed = {row["seed"]: row for row in sorted(matching(rows, **match), key=lambda row: row["date"])}
    if len(by_seed) < 2:
        return None
    figures = [row["nll"] for row in by_seed.values()]
    return statistics.mean(figures), statistics.stdev(figures), len(figures)


def over_seeds_text(seeds):
    """over_seeds' figures as "86.15 ± 0.04 (2)", mean ± sd (seeds); "–" for fewer than two seeds."""
    return "{:.2f} ± {:.2f} ({})".format(*seeds) if seeds else "–"


def table1(rows):
    """Table 1, both halves: the published figures beside this repo's at the headline stage."""
    lines = []
    for layers in (1, 2):
        for key in TABLE1:
            seeds = spread(rows, layers, key)
            paper, here = published(rows, PAPER, layers, key), ours(rows, layers, key)
            lines.append([f"{'2 layers: ' if layers == 2 else ''}{row_name(dict(zip(ROW_KEY, key)))}",
                          bound(paper), bound(published(rows, NBIP, layers, key)), f"**{bound(here)}**",
                          over_seeds_text(seeds), f"{active(paper)}; {active(here)}"])
    return markdown_table(["row", "Burda et al.", "nbip/IWAE", "stage 4, seed 1337 ± se",
                           "stage 4: mean ± sd (seeds)", "active units: paper; here"], lines)


def full_schedule(rows):
    """The VAE with k = 1 at the furthest stage of each setting that went past the headline stage, seed 1337 and
    over the seeds that reached that stage."""
    paper = published(rows, PAPER, 1, TABLE1[0])
    lines = []
    for setting in (PAPER_SETTING, SETTING):
        row = furthest(rows, source=THIS_REPO, layers=1, objective="elbo", k=1, **ONE_RUN, **setting)
        if row and row["stage"] > HEADLINE_STAGE:
            lines.append([setting_name(row), f"{row['stage']} ({row['epochs']:,})", bound(row),
                          over_seeds_text(spread(rows, 1, TABLE1[0], row["stage"], setting)), row["active_units"],
                          bound(paper)])
    return markdown_table(["VAE, k = 1: setting", "stage (epochs)", "seed 1337 ± se", "mean ± sd (seeds)",
                           "active units", "Burda et al., 3,280 epochs"], lines)


def stages(rows):
    """Table 1's rows of both halves, each in its headline setting, −log p(x) at stages 0 to 4 (rows never measured
    left out)."""
    numbers = range(HEADLINE_STAGE + 1)
    found = {(layers, key): [ours(rows, layers, key, stage) for stage in numbers]
             for layers in (1, 2) for key in ROW_ORDER}
    return markdown_table(["row"] + [f"stage {stage}" for stage in numbers], [
        [f"{'2 layers: ' if layers == 2 else ''}{row_name(dict(zip(ROW_KEY, key)))}"]
        + [f"{row['nll']:.2f}" if row else "–" for row in by_stage] for (layers, key), by_stage in found.items()
        if any(by_stage)])


def vae_k1(rows):
    """The VAE with k = 1 at stage 4 and beyond in every setting measured, seed 1337, the latest row of each stage."""
    measured = matching(rows, source=THIS_REPO, layers=1, objective="elbo", k=1, **ONE_RUN)
    latest_of = {(setting_name(row), row["stage"]): row for row in sorted(measured, key=lambda row: row["date"])
                 if row["stage"] >= HEADLINE_STAGE}
    chosen = sorted(latest_of.values(), key=lambda row: (-row["batch_size"], row["adam_eps"], row["init"],
                                                         row["adam_beta1"], row["stage"]))
    header = ["VAE, k = 1: setting", "stage (epochs)", "−log p(x), nats", "−ELBO, nats", "active units"]
    return markdown_table(header, [[setting_name(row), f"{row['stage']} ({row['epochs']:,})", bound(row),
                                    "–" if row["neg_elbo"] is None else f"{row['neg_elbo']:.2f}", row["active_units"]]
                                   for row in chosen])


def precisions(rows):
    """Every row trained under --bf16 beside the same row, setting, seed and stage in float32, where both ran."""
    lines = []
    for bf16 in matching(rows, source=THIS_REPO, precision=PRECISION[True]):
        float32 = ours(rows, bf16["layers"], [bf16[key] for key in ROW_KEY], bf16["stage"],
                       {key: bf16[key] for key in SETTING}, seed=bf16["seed"])
        if float32:
            lines.append([f"{row_name(bf16)}, {'two layers' if bf16['layers'] == 2 else 'one layer'}",
                          f"{bf16['stage']} ({bf16['epochs']:,})", bound(float32), bound(bf16),
                          f"{bf16['nll'] - float32['nll']:+.2f}"])
    return markdown_table(["row", "stage (epochs)", "float32", "--bf16", "bf16 − float32, nats"], lines)


def removal_checks(rows):
    """Burda et al.'s removal check at the headline stage: the bound's change with the inactive units removed."""
    chosen = [row for row in matching(rows, source=THIS_REPO, stage=HEADLINE_STAGE) if row["removal_nats"] is not None]
    return markdown_table(["row, setting (stage 4)", "−log p(x), nats", "active: A_u; KL",
                           "change without them, nats", "without the KL-inactive"], [
        [f"{row_name(row)}, {setting_name(row)}", bound(row),
         f"{row['active_units']}; {row['kl_active_units'] or '–'}",
         f"{row['removal_nats']:+.3f} ± {row['removal_se']:.3f}",
         "–" if row["kl_removal_nats"] is None else f"{row['kl_removal_nats']:+.3f} ± {row['kl_removal_se']:.3f}"]
        for row in chosen])


TABLES = {"table1": table1, "full-schedule": full_schedule, "stages": stages, "vae-k1": vae_k1,
          "precisions": precisions, "removal-checks": removal_checks}
