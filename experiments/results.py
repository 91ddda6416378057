"""Burda et al.'s (2015) Table 1 as data: every measured row lives in results/burda2015.csv, the published ones
beside this repo's; experiments/pages.py writes the pages' tables and the Table 1 figure from it.

    python -m experiments.results runs/burda2015/<row>     # add each evaluated stage of a run to the data

It reads each stage<i>/ of a run folder (experiments/burda2015.sh), its checkpoint and the metrics JSON that
`python test.py --model vae --ckpt-dir <stage> --plot-dir <stage> --iw-samples 5000` wrote there.
"""
import argparse
import csv
import datetime
import json
import os
import sys
from pathlib import Path

import config

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "results" / "burda2015.csv"
COLUMNS = ("source", "layers", "objective", "k", "estimator", "batch_size", "adam_eps", "init", "adam_beta1", "stage",
           "epochs", "nll", "nll_se", "nll_k100", "neg_elbo", "neg_elbo_se", "active_units", "train_minutes", "machine",
           "date", "command", "note")
THIS_REPO, PAPER, NBIP = "this repo", "Burda et al. 2015 (arXiv v4 Table 1)", "nbip/IWAE (README)"
XQDING = "xqding/Importance_Weighted_Autoencoders (README)"
# Table 1's rows, in the paper's order: (objective, k, estimator).
TABLE1 = (("elbo", 1, "standard"), ("elbo", 5, "standard"), ("elbo", 50, "standard"), ("iwae", 5, "standard"),
          ("iwae", 50, "standard"), ("iwae", 50, "dreg"))
# The row's setting beyond Table 1's row, with experiments/burda2015.sh's defaults: what its flags change.
SETTING = {"batch_size": 100, "adam_eps": 1e-8, "init": "torch", "adam_beta1": 0.9}
BOUND_SAMPLES = 5000  # the literature's k for -log p(x)


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
    """What a row of this repo ran with beyond Table 1's row: "batch 20, ε 1.2755e-07, glorot-mean" (and its layers
    where there are two)."""
    named = ["two stochastic layers"] if row["layers"] == 2 else []
    named += [f"batch {row['batch_size']}", f"ε {row['adam_eps']:g}"]
    named += [row["init"]] if row["init"] != SETTING["init"] else []
    named += [f"β1 {row['adam_beta1']:g}"] if row["adam_beta1"] != SETTING["adam_beta1"] else []
    return ", ".join(named)


def command(config_values, stage):
    """The experiments script's command that trains a row through `stage`."""
    flags = [f"--{key.replace('_', '-')} {config_values[key]:g}" if isinstance(config_values[key], float)
             else f"--{key.replace('_', '-')} {config_values[key]}"
             for key, default in {"objective": "elbo", "k": 1, "estimator": "standard", **SETTING,
                                  "stochastic_layers": 1}.items()
             if config_values[key] != default]
    return " ".join(["bash experiments/burda2015.sh", str(stage + 1), *flags])


def stage_row(folder, machine, note=""):
    """The data row of one evaluated stage folder, or None where test.py has not written its metrics there."""
    import torch  # here: the pages need no torch

    metrics_file, checkpoint_file = folder / "mnist_vae_metrics.json", folder / "mnist_vae.pt"
    if not metrics_file.is_file() or not checkpoint_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    if metrics["iw_samples"] != BOUND_SAMPLES:
        sys.exit(f"error: {metrics_file} has the bound with k = {metrics['iw_samples']}; the table's is k = "
                 f"{BOUND_SAMPLES}: rerun test.py on {folder} with --iw-samples {BOUND_SAMPLES}")
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
    # A key an older checkpoint lacks had today's default value when it was written.
    stored = {**config.defaults(), **checkpoint["config"], **checkpoint["model_args"]}
    stage = int(folder.name.removeprefix("stage"))
    date = datetime.date.fromtimestamp(metrics_file.stat().st_mtime).isoformat()
    return {"source": THIS_REPO, "layers": stored["stochastic_layers"], **{key: stored[key] for key in ("objective", "k", "estimator",
            *SETTING)}, "stage": stage, "epochs": len(checkpoint["history"]),
            "nll": round(metrics["iw_nll_nats"], 2), "nll_se": round(metrics["iw_nll_se"], 2), "nll_k100": None,
            "neg_elbo": round(metrics["negative_elbo_nats"], 2), "neg_elbo_se": round(metrics["negative_elbo_se"], 2),
            "active_units": "+".join(map(str, metrics.get("active_units_per_layer", [metrics["active_units"]]))),
            "train_minutes": round(sum(entry["seconds"] for entry in checkpoint["history"]) / 60, 1),
            "machine": machine, "date": date, "command": command(stored, stage), "note": note}


def add(run_folder, machine, note="", path=DATA):
    """Add each evaluated stage of a run folder to the data at `path`, once; returns the rows added."""
    rows = read(path)
    stages = sorted(Path(run_folder).glob("stage*"), key=lambda folder: int(folder.name.removeprefix("stage") or -1))
    added = [row for row in (stage_row(folder, machine, note) for folder in stages) if row is not None]
    same = ("layers", "objective", "k", "estimator", *SETTING, "stage", "nll", "neg_elbo", "machine", "date")
    added = [row for row in added if not any(all(old[key] == row[key] for key in same) for old in rows)]
    write(rows + added, path)
    return added

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_folder", type=Path)
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core {_processor()}", help="the machine it ran on")
    parser.add_argument("--note", default="", help="how it ran, e.g. 'one thread beside another run'")
    args = parser.parse_args(argv)
    if not args.run_folder.is_dir():
        sys.exit(f"error: no run folder at {args.run_folder}")
    for row in add(args.run_folder, args.machine, args.note):
        print(f"added {row_name(row)}, {setting_name(row)}, stage {row['stage']}: {row['nll']:.2f} nats")


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
