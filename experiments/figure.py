"""The Table 1 figure, drawn from results/burda2015.csv by `python -m experiments.pages`: each row's
−log p(x) ± standard error beside the paper's and nbip/IWAE's figures, a panel per number of stochastic layers, and
the one-layer rows' learning curves over the schedule's stages in one setting beside the paper's-setting run.
"""
from experiments.results import (HEADLINE_STAGE, NBIP, OLD_CODE, ONE_RUN, PAPER, PAPER_SETTING, ROOT,
                                 SETTING, TABLE1, THIS_REPO, TWO_LAYER_SETTING, furthest, latest, matching, row_name,
                                 setting_name)

FIGURE = ROOT / "plots" / "readme" / "burda2015_table1.png"
HEADLINE = {1: SETTING, 2: TWO_LAYER_SETTING}  # each panel's setting, by stochastic layers


def key_of(objective, k, estimator):
    return {"objective": objective, "k": k, "estimator": estimator}


def shown(rows):
    """The rows the figure draws: this repo's, one run each, from today's code."""
    return [row for row in matching(rows, source=THIS_REPO, **ONE_RUN) if row["note"] != OLD_CODE]


def figure(rows, path=FIGURE):
    from matplotlib.figure import Figure

    ours = shown(rows)
    fig = Figure(figsize=(15, 5.2))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    for ax, layers in zip(axes, (1, 2)):
        positions = range(len(TABLE1))
        for position, key in zip(positions, TABLE1):
            row = key_of(*key)
            for source, marker, colour in ((PAPER, "_", "black"), (NBIP, "x", "grey")):
                found = latest(rows, source=source, layers=layers, **row)
                if found:
                    ax.plot([position], [found["nll"]], marker=marker, markersize=14 if marker == "_" else 7,
                            markeredgewidth=2, color=colour, linestyle="none")
            for found, marker, colour, shift in (
                    (latest(ours, layers=layers, stage=HEADLINE_STAGE, **row, **HEADLINE[layers]), "o", "C0", -0.12),
                    (furthest(ours, layers=layers, **row, **PAPER_SETTING), "s", "C3", 0.12)):
                if found:
                    ax.errorbar([position + shift], [found["nll"]], yerr=[found["nll_se"]], marker=marker, color=colour,
                                markersize=5, capsize=3, linestyle="none")
                    if marker == "s":
                        ax.annotate(f"stage {found['stage']}", (position + shift, found["nll"]), fontsize=7,
                                    xytext=(4, -3), textcoords="offset points")
        ax.set_xticks(list(positions), [row_name(key_of(*key)).replace(", ", "\n", 1) for key in TABLE1], fontsize=8)
        ax.set(ylabel="−log p(x), nats (k = 5000)", title=f"{'one stochastic layer' if layers == 1 else 'two stochastic layers'}")
        ax.grid(alpha=0.3, axis="y")
    handles = [axes[0].plot([], [], marker=m, color=c, linestyle="none", markeredgewidth=2)[0] for m, c in
               (("_", "black"), ("x", "grey"), ("o", "C0"), ("s", "C3"))]
    fig.legend(handles, ["Burda et al., 3,280 epochs", "nbip/IWAE, 3,280 epochs",
                             f"this repo, stage {HEADLINE_STAGE}: {setting_name({'layers': 1, **SETTING})} (two layers: "
                             f"{TWO_LAYER_SETTING['init']})", f"this repo, {setting_name({'layers': 1, **PAPER_SETTING})}, "
                             "furthest stage"], fontsize=8, loc="lower center", ncol=4)
    curves = axes[2]
    for index, key in enumerate(TABLE1):
        stages = {row["stage"]: row for row in sorted(matching(ours, layers=1, **key_of(*key), **SETTING),
                                                     key=lambda row: row["date"])}
        points = sorted((row["epochs"], row["nll"]) for row in stages.values())
        if points:
            curves.plot(*zip(*points), marker="o", markersize=3, color=f"C{index}",
                        label=f"{row_name(key_of(*key))}")
    paper_run = {row["stage"]: row for row in sorted(matching(ours, layers=1, **key_of(*TABLE1[0]), **PAPER_SETTING),
                                                     key=lambda row: row["date"])}
    if paper_run:
        curves.plot(*zip(*sorted((row["epochs"], row["nll"]) for row in paper_run.values())), marker="s", markersize=3,
                    color="C0", linestyle="--", label=f"VAE, k = 1, {setting_name({'layers': 1, **PAPER_SETTING})}")
    paper_vae = latest(rows, source=PAPER, layers=1, **key_of(*TABLE1[0]))
    if paper_vae:
        curves.axhline(paper_vae["nll"], color="black", linewidth=1, linestyle=":",
                       label="Burda et al.'s VAE, k = 1, after 3,280 epochs")
    curves.set(xscale="log", xlabel="epochs (stage i ends at 1 + 3 + ... + 3^i)", ylabel="−log p(x), nats (k = 5000)",
               ylim=(84, 100), title=f"one layer through the stages: {setting_name({'layers': 1, **SETTING})}")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # the first two panels' legend below them all
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
