"""The Table 1 figure, drawn from results/burda2015.csv by `python -m experiments.pages`: each row's −log p(x)
± its standard error over the test images beside the paper's and nbip/IWAE's figures, a panel per number of
stochastic layers, each series one setting, the legend under each panel."""
from experiments.results import (HEADLINE_STAGE, NBIP, ONE_RUN, PAPER, PAPER_SETTING, ROOT, TABLE1, THIS_REPO, furthest,
                                 row_name, setting_name)
from experiments.tables import HEADLINE, ROW_KEY, ours, published

FIGURE = ROOT / "plots" / "readme" / "burda2015_table1.png"


def figure(rows, path=FIGURE):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.2))
    for ax, layers in zip(fig.subplots(1, 2, sharey=True), (1, 2)):
        positions = range(len(TABLE1))
        for source, marker, colour in ((PAPER, "_", "black"), (NBIP, "x", "grey")):
            found = [(position, published(rows, source, layers, key)) for position, key in zip(positions, TABLE1)]
            ax.plot(*zip(*[(position, row["nll"]) for position, row in found if row]), marker=marker, color=colour,
                    markersize=14 if marker == "_" else 7, markeredgewidth=2, linestyle="none",
                    label=f"{source.split(' (')[0]}, 3,280 epochs")
        series = [([ours(rows, layers, key) for key in TABLE1], "o", "C0", -0.12,
                   f"this repo, stage {HEADLINE_STAGE}: {setting_name({'layers': 1, **HEADLINE[layers]})}")]
        if layers == 1:
            series.append(([furthest(rows, source=THIS_REPO, layers=1, **dict(zip(ROW_KEY, key)), **ONE_RUN,
                                     **PAPER_SETTING) for key in TABLE1], "s", "C3", 0.12,
                           f"this repo, furthest stage: {setting_name({'layers': 1, **PAPER_SETTING})}"))
        for found, marker, colour, shift, label in series:
            points = [(position + shift, row) for position, row in zip(positions, found) if row]
            ax.errorbar([x for x, _ in points], [row["nll"] for _, row in points],
                        yerr=[row["nll_se"] for _, row in points], marker=marker, color=colour, markersize=5,
                        capsize=3, linestyle="none", label=label)
            for x, row in points:
                if row["stage"] != HEADLINE_STAGE:
                    ax.annotate(f"stage {row['stage']}", (x, row["nll"]), fontsize=7, xytext=(4, -3),
                                textcoords="offset points")
        ax.set_xticks(list(positions), [row_name(dict(zip(ROW_KEY, key))).replace(", ", "\n", 1) for key in TABLE1],
                      fontsize=8)
        ax.set(ylabel="−log p(x), nats (k = 5000)", title=f"{'one' if layers == 1 else 'two'} stochastic layer"
                                                          f"{'s' if layers == 2 else ''}")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
