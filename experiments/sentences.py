"""The pages' sentences that compare rows of Table 1, written from results/burda2015.csv by `python -m experiments.pages`:
each says which rows, their figures, their difference in nats and in combined standard errors, and the paper's
difference for the same rows where it has them. The prose around them says in words what they show.
"""
from experiments.results import (HEADLINE_STAGE, NBIP, ONE_RUN, PAPER, PAPER_SETTING, PRECISION, SETTING, TABLE1,
                                 THIS_REPO, TWO_LAYER_SETTING, furthest, latest, matching, row_name, setting_name)
from experiments.tables import SAME_RUN, gap, setting_in_full

VAE_K1, VAE_K5, VAE_K50, IWAE_K5, IWAE_K50, DREG = TABLE1
STL = ("iwae", 50, "stl")


def _ours(rows, row, layers=1, stage=HEADLINE_STAGE, setting=SETTING, **more):
    objective, k, estimator = row
    return latest(rows, source=THIS_REPO, layers=layers, objective=objective, k=k, estimator=estimator, stage=stage,
                  **{**ONE_RUN, **more}, **setting)


def _published(rows, source, row, layers=1):
    objective, k, estimator = row
    return latest(rows, source=source, layers=layers, objective=objective, k=k, estimator=estimator)


SOURCES = {PAPER: "the paper", NBIP: "nbip/IWAE"}


def _where(row):
    return f"{setting_name(row)}, stage {row['stage']}" + (f"; {row['note']}" if row["note"] else "")


def compare(first, second, published=None):
    """One sentence: `first` against `second` (rows of the data), and the published difference between the same two
    rows where `published` (a (first, second) pair of published rows) has both."""
    if not first or not second:
        return None
    difference, errors = gap(first, second)
    second_where = "the same setting and stage" if _where(second) == _where(first) else _where(second)
    said = (f"{row_name(first)} ({_where(first)}): {first['nll']:.2f} ± {first['nll_se']:.2f} against "
            f"{row_name(second)} ({second_where}): {second['nll']:.2f} ± {second['nll_se']:.2f}, ")
    if round(difference, 2) == 0:  # the data holds hundredths: "0.00 nats above" would claim a direction
        said += "the same to the hundredth of a nat (0.0 combined standard errors"
    else:
        said += (f"{abs(difference):.2f} nats {'below' if difference < 0 else 'above'} ({abs(errors):.1f} combined "
                 "standard errors")
    if published and all(published):
        published_gap = published[0]["nll"] - published[1]["nll"]
        said += f"; {SOURCES[published[0]['source']]}, after {published[0]['epochs']:,} epochs: " \
                f"{abs(published_gap):.2f} {'below' if published_gap < 0 else 'above'}"
    return said + ")"


def _bullets(sentences):
    return "\n".join(f"- {sentence}." for sentence in sentences if sentence) or "No rows measured yet."


def order(rows, layers=1, setting=SETTING):
    """Whether this repo's rows at the headline stage stand in the paper's order, with their figures."""
    found = [(key, _ours(rows, key, layers, setting=setting)) for key in TABLE1[:5]]  # the paper's rows
    found = [(key, row) for key, row in found if row]
    if len(found) < 2:
        return None
    figures = [row["nll"] for _, row in found]
    ordered = all(a > b for a, b in zip(figures, figures[1:]))
    count = {2: "two", 3: "three", 4: "four", 5: "five"}[len(found)]
    return (f"At stage {HEADLINE_STAGE} ({setting_in_full(setting)}) the paper's {count} rows "
            f"{'stand' if ordered else 'do not stand'} in its order: "
            + " > ".join(f"{row_name(row)} ({row['nll']:.2f})" for _, row in found))


def _against_paper(rows, key, layers, setting):
    """This repo's furthest stage of a row in `setting` against the paper's figure after the full schedule."""
    row = furthest(rows, source=THIS_REPO, layers=layers, objective=key[0], k=key[1], estimator=key[2], **ONE_RUN,
                   **setting)
    paper = _published(rows, PAPER, key, layers)
    if not row or not paper:
        return None
    gap = row["nll"] - paper["nll"]
    note = f" ({row['note']})" if row["note"] else ""
    return (f"{row_name(row)}{', two stochastic layers' if layers == 2 else ''} in {setting_in_full(setting)} reaches "
            f"{row['nll']:.2f} ± {row['nll_se']:.2f} at stage {row['stage']} ({row['epochs']:,} epochs){note}, "
            f"{abs(gap):.2f} nats {'above' if gap > 0 else 'below'} the paper's {paper['nll']:.2f} after "
            f"{paper['epochs']:,}")


def _pair(rows, first, second, layers=1, source=PAPER, **where):
    return compare(_ours(rows, first, layers, **where), _ours(rows, second, layers, **where),
                   (_published(rows, source, first, layers), _published(rows, source, second, layers)))


def headline(rows):
    """The README's and the literature page's sentences on the one-layer half."""
    return _bullets([order(rows), _pair(rows, IWAE_K50, VAE_K1), _pair(rows, DREG, IWAE_K50, source=NBIP),
                     _against_paper(rows, VAE_K1, 1, PAPER_SETTING)])


def one_layer(rows):
    """Table 1's one-layer rows against each other at the headline stage."""
    return _bullets([_pair(rows, IWAE_K50, VAE_K1), _pair(rows, IWAE_K50, IWAE_K5), _pair(rows, IWAE_K5, VAE_K1),
                     _pair(rows, VAE_K5, VAE_K1), _pair(rows, VAE_K50, VAE_K1), _pair(rows, DREG, IWAE_K50, source=NBIP)])


def _setting(**change):
    return {**SETTING, **change}


def settings(rows):
    """The VAE with k = 1 at stage 4: what the batch size, Adam's ε, the initialisation and β1 each change."""
    paper_eps, batch20 = {"adam_eps": PAPER_SETTING["adam_eps"]}, {"batch_size": 20}
    pairs = [(_setting(**batch20, **paper_eps), _setting(**paper_eps)),
             (_setting(**paper_eps), SETTING), (_setting(**batch20, **paper_eps), _setting(**batch20)),
             (_setting(adam_eps=1e-4), SETTING),
             (_setting(**batch20, **paper_eps, init="glorot"), _setting(**batch20, **paper_eps)),
             (PAPER_SETTING, _setting(**batch20, **paper_eps)),
             (PAPER_SETTING, _setting(**batch20, **paper_eps, init="glorot")),
             ({**PAPER_SETTING, "adam_beta1": 0.99}, PAPER_SETTING), (_setting(init="glorot-mean"), SETTING)]
    said = [compare(_ours(rows, VAE_K1, setting=first), _ours(rows, VAE_K1, setting=second)) for first, second in pairs]
    beta99 = {**PAPER_SETTING, "adam_beta1": 0.99}
    said.append(_pair(rows, IWAE_K5, VAE_K1, setting=beta99))
    return _bullets(said)


def schedule(rows):
    """The full schedule: the furthest stages against the paper, and the paper's setting against this repo's."""
    said = [_against_paper(rows, VAE_K1, 1, setting) for setting in (SETTING, PAPER_SETTING)]
    for stage in (5, 6):
        paper_eps = _setting(batch_size=20, adam_eps=PAPER_SETTING["adam_eps"])
        said += [compare(_ours(rows, VAE_K1, stage=stage, setting=PAPER_SETTING),
                         _ours(rows, VAE_K1, stage=stage, setting=paper_eps)),
                 compare(_ours(rows, VAE_K1, stage=stage, setting=paper_eps),
                         _ours(rows, VAE_K1, stage=stage, setting=SETTING))]
    return _bullets(said)


def two_layers(rows):
    """The two-layer half at the headline stage: against each other, against one layer, and the initialisation."""
    where = {"setting": TWO_LAYER_SETTING}
    said = [order(rows, 2, TWO_LAYER_SETTING),
            compare(_ours(rows, VAE_K1, 2, **where), _ours(rows, VAE_K1, 1, **where),
                    (_published(rows, PAPER, VAE_K1, 2), _published(rows, PAPER, VAE_K1, 1))),
            _pair(rows, IWAE_K50, VAE_K1, 2, **where),
            compare(_ours(rows, IWAE_K50, 2, **where), _ours(rows, IWAE_K50, 1, **where),
                    (_published(rows, PAPER, IWAE_K50, 2), _published(rows, PAPER, IWAE_K50, 1))),
            _pair(rows, DREG, IWAE_K50, 2, **where),
            compare(_ours(rows, VAE_K1, 2, setting=SETTING), _ours(rows, VAE_K1, 2, **where))]
    return _bullets(said)


def _furthest_pair(first, second):
    """(first(stage), second(stage)) at the furthest stage where both give a row, or None; first and second each map a
    stage to a row of the data or None."""
    both = [stage for stage in range(8) if first(stage) and second(stage)]
    return (first(both[-1]), second(both[-1])) if both else None


def estimators(rows):
    """The IWAE with k = 50 under each encoder gradient (standard, DReG, STL) in this repo's setting, at the furthest
    stage where the STL row and the standard row both stand."""
    pair = _furthest_pair(lambda stage: _ours(rows, STL, stage=stage), lambda stage: _ours(rows, IWAE_K50, stage=stage))
    if not pair:
        stl = furthest(rows, source=THIS_REPO, layers=1, objective=STL[0], k=STL[1], estimator=STL[2], **ONE_RUN,
                       **SETTING)
        return _bullets([stl and f"{row_name(stl)} ({_where(stl)}): {stl['nll']:.2f} ± {stl['nll_se']:.2f}; the "
                                 "standard row is not measured at this stage in the same setting"])
    stl, standard = pair
    dreg = _ours(rows, DREG, stage=stl["stage"])
    return _bullets([compare(stl, standard), compare(stl, dreg), compare(dreg, standard)])


def precisions(rows):
    """Each row trained under --bf16 against the same row, setting and seed in float32, at the furthest stage both
    reached."""
    runs = dict.fromkeys(tuple(row[key] for key in SAME_RUN)
                         for row in matching(rows, source=THIS_REPO, precision=PRECISION[True]))
    said = []
    for run in runs:
        def trained_in(bf16, run=run):
            return lambda stage: latest(rows, source=THIS_REPO, precision=PRECISION[bf16], stage=stage,
                                        **dict(zip(SAME_RUN, run)))

        pair = _furthest_pair(trained_in(True), trained_in(False))
        said.append(compare(*pair) if pair else None)
    return _bullets(said)


SENTENCES = {"headline": headline, "one-layer-comparisons": one_layer, "setting-comparisons": settings,
             "schedule-comparisons": schedule, "two-layer-comparisons": two_layers,
             "estimator-comparisons": estimators, "precision-comparisons": precisions}
