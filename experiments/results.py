"""Burda et al.'s (2015) Table 1 as data: every measured row lives in results/burda2015.csv, the published ones
beside this repo's, and the pages' tables and the Table 1 figure are written from it, never by hand.

    python -m experiments.results add runs/burda2015/<row>   # add each evaluated stage of a run to the data
    python -m experiments.results pages                      # rewrite the pages' tables and the figure

`add` reads each stage<i>/ of a run folder (experiments/burda2015.sh), its checkpoint and the metrics JSON that
`python test.py --model vae --ckpt-dir <stage> --plot-dir <stage> --iw-samples 5000` wrote there.
"""
import argparse
import csv
import datetime
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "results" / "burda2015.csv"
FIGURE = ROOT / "plots" / "readme" / "burda2015_table1.png"
PAGES = (ROOT / "README.md", ROOT / "docs" / "literature.md")
COLUMNS = ("source", "layers", "objective", "k", "estimator", "batch_size", "adam_eps", "init", "adam_beta1", "stage",
           "epochs", "nll", "nll_se", "nll_k100", "neg_elbo", "neg_elbo_se", "active_units", "train_minutes", "machine",
           "date", "command", "note")
THIS_REPO, PAPER, NBIP = "this repo", "Burda et al. 2015 (arXiv v4 Table 1)", "nbip/IWAE (README)"
# Table 1's rows, in the paper's order: (objective, k, estimator).
TABLE1 = (("elbo", 1, "standard"), ("elbo", 5, "standard"), ("elbo", 50, "standard"), ("iwae", 5, "standard"),
          ("iwae", 50, "standard"), ("iwae", 50, "dreg"))
# The row's setting beyond Table 1's row, with experiments/burda2015.sh's defaults: what its flags change.
SETTING = {"batch_size": 100, "adam_eps": 1e-8, "init": "torch", "adam_beta1": 0.9}
BOUND_SAMPLES = 5000  # the literature's k for -log p(x)
BEGIN, END = "<!-- generated from results/burda2015.csv by `python -m experiments.results pages`: {} -->", \
    "<!-- end of generated table -->"


def read(path=DATA):
    with open(path, newline="") as stream:
        return [_typed(row) for row in csv.DictReader(stream)]


def _typed(row):
    for key in ("layers", "k", "batch_size", "stage", "epochs"):
        row[key] = int(row[key]) if row[key] else None
    for key in ("adam_eps", "adam_beta1", "nll", "nll_se", "nll_k100", "neg_elbo", "neg_elbo_se", "train_minutes"):
        row[key] = float(row[key]) if row[key] else None
    return row


def write(rows, path=DATA):
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: "" if row[key] is None else row[key] for key in COLUMNS} for row in rows)


def row_name(row):
    """Table 1's name of a row: "VAE, k = 50", "IWAE, k = 50, DReG"."""
    dreg = ", DReG" if row["estimator"] == "dreg" else ""
    return f"{'IWAE' if row['objective'] == 'iwae' else 'VAE'}, k = {row['k']}{dreg}"


def setting_name(row):
    """What a row of this repo ran with beyond Table 1's row: "batch 20, ε 1.2755e-07, glorot-mean"."""
    named = [f"batch {row['batch_size']}", f"ε {row['adam_eps']:g}"]
    named += [row["init"]] if row["init"] != SETTING["init"] else []
    named += [f"β1 {row['adam_beta1']:g}"] if row["adam_beta1"] != SETTING["adam_beta1"] else []
    return ", ".join(named)


def command(config_values, stage):
    """The experiments script's command that trains a row through `stage`."""
    flags = [f"--{key.replace('_', '-')} {config_values[key]:g}" if isinstance(config_values[key], float)
             else f"--{key.replace('_', '-')} {config_values[key]}"
             for key, default in {"objective": "elbo", "k": 1, "estimator": "standard", **SETTING}.items()
             if config_values[key] != default]
    return " ".join(["bash experiments/burda2015.sh", str(stage + 1), *flags])


def stage_row(folder, machine, note=""):
    """The data row of one evaluated stage folder, or None where test.py has not written its metrics there."""
    import json

    import torch

    metrics_file, checkpoint_file = folder / "mnist_vae_metrics.json", folder / "mnist_vae.pt"
    if not metrics_file.is_file() or not checkpoint_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    if metrics["iw_samples"] != BOUND_SAMPLES:
        sys.exit(f"error: {metrics_file} has the bound with k = {metrics['iw_samples']}; the table's is k = "
                 f"{BOUND_SAMPLES}: rerun test.py on {folder} with --iw-samples {BOUND_SAMPLES}")
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
    stored = {"init": "torch", "adam_beta1": 0.9, **checkpoint["config"], **checkpoint["model_args"]}
    stage = int(folder.name.removeprefix("stage"))
    date = datetime.date.fromtimestamp(metrics_file.stat().st_mtime).isoformat()
    return {"source": THIS_REPO, "layers": 1, **{key: stored[key] for key in ("objective", "k", "estimator",
            *SETTING)}, "stage": stage, "epochs": len(checkpoint["history"]),
            "nll": round(metrics["iw_nll_nats"], 2), "nll_se": round(metrics["iw_nll_se"], 2), "nll_k100": None,
            "neg_elbo": round(metrics["negative_elbo_nats"], 2), "neg_elbo_se": round(metrics["negative_elbo_se"], 2),
            "active_units": str(metrics["active_units"]),
            "train_minutes": round(sum(entry["seconds"] for entry in checkpoint["history"]) / 60, 1),
            "machine": machine, "date": date, "command": command(stored, stage), "note": note}


def add(run_folder, machine, note="", path=DATA):
    """Add each evaluated stage of a run folder to the data at `path`, once; returns the rows added."""
    rows = read(path)
    stages = sorted(Path(run_folder).glob("stage*"), key=lambda folder: int(folder.name.removeprefix("stage") or -1))
    added = [row for row in (stage_row(folder, machine, note) for folder in stages) if row is not None]
    same = ("objective", "k", "estimator", *SETTING, "stage", "nll", "neg_elbo", "machine", "date")
    added = [row for row in added if not any(all(old[key] == row[key] for key in same) for old in rows)]
    write(rows + added, path)
    return added


def _value(mean, se):
    return f"{mean:.2f} ± {se:.2f}" if se is not None else f"{mean:.2f}"


def _table(header, lines):
    return "\n".join([f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
                     + [f"| {' | '.join(line)} |" for line in lines])


def _latest(rows, **match):
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    return max(found, key=lambda row: row["date"]) if found else None


def table1(rows):
    """README: each of Table 1's one-layer rows, the paper's and nbip/IWAE's figure beside this repo's at stage 4 in
    the experiments script's setting and at the furthest stage it reached in any setting."""
    lines = []
    for objective, k, estimator in TABLE1:
        row = {"layers": 1, "objective": objective, "k": k, "estimator": estimator}
        paper, nbip = _latest(rows, source=PAPER, **row), _latest(rows, source=NBIP, **row)
        stage4 = _latest(rows, source=THIS_REPO, stage=4, **row, **SETTING)
        ours = [r for r in rows if r["source"] == THIS_REPO and all(r[key] == value for key, value in row.items())]
        furthest = max(ours, key=lambda r: (r["stage"], r["date"]))
        lines.append([row_name(row), f"{paper['nll']:.2f} ({paper['active_units']})" if paper else "–",
                      f"{nbip['nll']:.2f}" if nbip else "–",
                      f"**{_value(stage4['nll'], stage4['nll_se'])}** ({stage4['active_units']})",
                      f"{_value(furthest['nll'], furthest['nll_se'])}: stage {furthest['stage']}, "
                      f"{setting_name(furthest)}"])
    return _table(["row", "Burda et al., 3,280 epochs (active units)", "nbip/IWAE, 3,280 epochs",
                   "this repo, stage 4 (121 epochs), batch 100 (active units)", "this repo, furthest stage"], lines)


def _measured(rows, header_first, first):
    lines = [[first(row), f"{row['stage']} ({row['epochs']:,})", _value(row["nll"], row["nll_se"])
              + (f" ({row['nll_k100']:.2f})" if row["nll_k100"] else ""), _value(row["neg_elbo"], row["neg_elbo_se"]),
              row["active_units"], f"{row['train_minutes']:g} min", f"{row['machine']}, {row['date']}",
              f"`{row['command']}`" + (f"; {row['note']}" if row["note"] else "")] for row in rows]
    return _table([header_first, "stage (epochs)", "−log p(x), nats, k = 5000 (k = 100)", "−ELBO, nats",
                   "active units", "training", "machine, date", "command"], lines)


def settings_at_stage4(rows):
    """The VAE with k = 1 at stage 4 in every setting measured: batch size, Adam's ε and β1, initialisation."""
    chosen = [row for row in rows if row["source"] == THIS_REPO and row["objective"] == "elbo" and row["k"] == 1
              and row["stage"] == 4]
    chosen.sort(key=lambda row: (-row["batch_size"], row["adam_eps"], row["init"], row["adam_beta1"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def schedule(rows):
    """The VAE with k = 1 through the schedule's other stages, by setting."""
    chosen = [row for row in rows if row["source"] == THIS_REPO and row["objective"] == "elbo" and row["k"] == 1
              and row["stage"] != 4]
    chosen.sort(key=lambda row: (setting_name(row), row["stage"], row["date"]))
    return _measured(chosen, "VAE, k = 1: setting", setting_name)


def other_rows(rows):
    """Table 1's rows beyond the VAE with k = 1, every stage measured."""
    chosen = [row for row in rows if row["source"] == THIS_REPO and (row["objective"], row["k"]) != ("elbo", 1)]
    chosen.sort(key=lambda row: (TABLE1.index((row["objective"], row["k"], row["estimator"])), row["stage"]))
    return _measured(chosen, "row, setting", lambda row: f"{row_name(row)}, {setting_name(row)}")


def published(rows):
    """Every published row, as its source gives it."""
    chosen = [row for row in rows if row["source"] != THIS_REPO]
    lines = [[row["source"], str(row["layers"]), row_name(row), f"{row['epochs']:,}", f"{row['nll']:.2f}",
              row["active_units"] or "–", row["note"]] for row in chosen]
    return _table(["source", "stochastic layers", "row", "epochs", "−log p(x), nats", "active units", "setting"], lines)


TABLES = {"table1": table1, "settings-at-stage-4": settings_at_stage4, "schedule": schedule,
          "other-rows": other_rows, "published": published}


def render(page_text, rows):
    """The page with each generated block rewritten from the data."""
    def block(match):
        return f"{BEGIN.format(match[1])}\n{TABLES[match[1]](rows)}\n{END}"

    pattern = re.escape(BEGIN).replace(r"\{\}", r"([\w-]+)") + r"\n.*?" + re.escape(END)
    return re.sub(pattern, block, page_text, flags=re.S)


def figure(rows, path=FIGURE):
    """-log p(x) against epochs: a line per row and setting of this repo through its stages (the latest measurement
    of each), the paper's and nbip/IWAE's 3,280-epoch figures marked at the right."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.5))
    ax = fig.subplots()
    ours = sorted((row for row in rows if row["source"] == THIS_REPO and row["layers"] == 1), key=lambda row: row["date"])
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="add each evaluated stage of a run folder to the data")
    adding.add_argument("run_folder", type=Path)
    adding.add_argument("--machine", default=f"{os.cpu_count()}-core {_processor()}", help="the machine it ran on")
    adding.add_argument("--note", default="", help="how it ran, e.g. 'one thread beside another run'")
    commands.add_parser("pages", help="rewrite the pages' generated tables and the figure from the data")
    args = parser.parse_args(argv)
    if args.command == "add":
        if not args.run_folder.is_dir():
            sys.exit(f"error: no run folder at {args.run_folder}")
        for row in add(args.run_folder, args.machine, args.note):
            print(f"added {row_name(row)}, {setting_name(row)}, stage {row['stage']}: {row['nll']:.2f} nats")
        return
    rows = read()
    for page in PAGES:
        page.write_text(render(page.read_text(), rows))
    figure(rows)
    print(f"wrote the tables of {', '.join(str(page.relative_to(ROOT)) for page in PAGES)} and {FIGURE.relative_to(ROOT)}")


def _processor():
    """The processor's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


if __name__ == "__main__":
    main()
