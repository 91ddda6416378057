"""Burda et al.'s (2015) Table 1 as data: every measured row lives in results/burda2015.csv, the published ones
beside this repo's; experiments/pages.py writes the pages' tables and the Table 1 figure from it.

A run folder of `python -m experiments.burda2015` holds stage<i>/ folders, each with the stage's checkpoint and the
metrics JSON that `python test.py --model vae --ckpt-dir <stage> --plot-dir <stage> --iw-samples 5000` wrote there.
Every change of the data is whole or not at all and made under a lock, so jobs that record at the same time all
land.
"""
import csv
import datetime
import io
import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import config
from cli import UserError
from files import atomic_path, exclusive_lock

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "results" / "burda2015.csv"
COLUMNS = ("source", "layers", "objective", "k", "estimator", "batch_size", "adam_eps", "init", "adam_beta1", "seed",
           "precision", "stage", "epochs", "nll", "nll_se", "nll_k100", "neg_elbo", "neg_elbo_se", "active_units",
           "active_statistic", "units_removed", "removal_nats", "removal_se", "kl_active_units", "kl_removal_nats",
           "kl_removal_se", "train_minutes", "machine", "date", "command", "note")
# Which activity a row's active_units counts: Burda et al.'s A_u = Cov_x(E_q[z_u]) (z2's E_q averaged over draws of
# z1 ~ q(z1|x)), or, in two-layer rows measured before units.py, z2's at z1's mean; kl_active_units counts the units
# whose mean KL from q to their prior exceeds units.KL_THRESHOLD, and kl_removal_* remove the others.
ACTIVE_STATISTICS = ("A_u", "A_u, z2 at z1's mean")
THIS_REPO, PAPER, NBIP = "this repo", "Burda et al. 2015 (arXiv v4 Table 1)", "nbip/IWAE (README)"
# Table 1's rows, in the paper's order: (objective, k, estimator).
TABLE1 = (("elbo", 1, "standard"), ("elbo", 5, "standard"), ("elbo", 50, "standard"), ("iwae", 5, "standard"),
          ("iwae", 50, "standard"), ("iwae", 50, "dreg"))
# Rows beyond the paper's table, after it in the pages: the IWAE with k = 50 under sticking the landing.
ROW_ORDER = TABLE1 + (("iwae", 50, "stl"),)
ESTIMATOR_NAMES = {"dreg": "DReG", "stl": "STL"}
# The row's setting beyond Table 1's row, with the experiments command's defaults: what its flags change.
SETTING = {"batch_size": 100, "adam_eps": 1e-8, "init": "torch", "adam_beta1": 0.9}
# A row's training precision, by its --bf16 (the bound is float32 either way).
PRECISION = {False: "float32", True: "bfloat16"}
# Burda et al.'s own setting: batch 20, their Adam eps of 1e-4 on a loss per image (docs/literature.md), their
# code's initialisation.
PAPER_SETTING = {"batch_size": 20, "adam_eps": 1.2755e-07, "init": "glorot-mean", "adam_beta1": 0.9}
# The two-layer rows' setting: the authors' initialisation, without which the two-layer model leaves most of its
# units unused (docs/literature.md); batch 100 and Adam's eps as in the one-layer rows.
TWO_LAYER_SETTING = {**SETTING, "init": "glorot-mean"}
HEADLINE_STAGE = 4  # the stage every row of the pages' headline columns has reached: 121 epochs
BOUND_SAMPLES = 5000  # the literature's k for -log p(x)
DEFAULT_SEED = config.seed  # the seed of every row measured before seeds were varied; the pages' single-run columns
# The pages' single-run columns and figure: the seed and precision every row had before either was varied.
ONE_RUN = {"seed": DEFAULT_SEED, "precision": PRECISION[False]}
# What makes a measured row the same as another: a stage recorded under the same key is not recorded again.
KEY = ("source", "layers", "objective", "k", "estimator", *SETTING, "seed", "precision", "stage")


INTEGERS = ("layers", "k", "batch_size", "seed", "stage", "epochs")
FLOATS = ("adam_eps", "adam_beta1", "nll", "nll_se", "nll_k100", "neg_elbo", "neg_elbo_se", "removal_nats",
          "removal_se", "kl_removal_nats", "kl_removal_se", "train_minutes")


def read(path=DATA, columns=COLUMNS, integers=INTEGERS, floats=FLOATS, written_for=None):
    """The rows of a data file, typed, the file checked whole as strictly as write() writes it: its header, every
    line ended and holding one field per column, no NUL byte, every number finite. Anything else is one line naming
    the file, the line and what is wrong (with `written_for`, the file a temporary was written for, which is left
    as it was)."""
    try:
        with open(path, newline="") as stream:
            text = stream.read()
    except (OSError, ValueError) as error:  # ValueError: not UTF-8
        raise UserError(f"cannot read the results data {path}: {error}") from None

    def damaged(line, what):
        if written_for:
            return UserError(f"{written_for} was left as it was: its new line {line} would not read back ({what})")
        return UserError(f"the results data {path} is damaged at line {line}: {what}; mend or restore it (git "
                         "checkout, for the repo's own), then rerun")

    if "\0" in text:
        raise damaged(text[:text.index("\0")].count("\n") + 1, "it holds a NUL byte")
    if text and not text.endswith("\n"):
        raise damaged(text.count("\n") + 1, "its last line is cut short")
    reader = csv.reader(io.StringIO(text, newline=""))
    if tuple(next(reader, ())) != columns:
        raise damaged(1, f"its columns are not {', '.join(columns)}")
    rows = []
    for fields in reader:
        if len(fields) != len(columns):
            raise damaged(reader.line_num, f"{len(fields)} fields where the header names {len(columns)}")
        row = dict(zip(columns, fields))
        for key in (*integers, *floats):
            try:
                row[key] = (int if key in integers else float)(row[key]) if row[key] else None
            except ValueError:
                raise damaged(reader.line_num, f"its {key} is {row[key]!r}, not a number") from None
            if key in floats and row[key] is not None and not math.isfinite(row[key]):
                raise damaged(reader.line_num, f"its {key} is {row[key]}, not a finite number")
        rows.append(row)
    return rows


def write(rows, path=DATA, columns=COLUMNS, **types):
    """Replace a data file with `rows` under `columns` (None written empty), whole or not at all, and only if read()
    reads back what was written."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows({key: "" if row[key] is None else row[key] for key in columns} for row in rows)
        read(temporary, columns, **types, written_for=path)


def check_writable(path):
    """Refuse, before any job, a data file that cannot be written (read-only, immutable): opened to append, nothing
    written."""
    try:
        with open(path, "a"):
            pass
    except OSError as error:
        raise UserError(f"cannot write the results data {path} ({error.strerror or error}); make it writable or "
                        "choose another file with --results") from None


def record(new_rows, path=DATA):
    """Add each of `new_rows` whose KEY the data does not hold yet; returns the rows added.

    The read and the write happen under one lock (a file beside the data; on a shared file system, the lock its
    clients share), so jobs recording at the same time wait for each other and none loses another's row.
    """
    path = Path(path)
    with exclusive_lock(path.with_name(f".{path.name}.lock"), wait=True):
        rows = read(path)
        held = {key_of(row) for row in rows}
        added = []
        for row in new_rows:
            if key_of(row) not in held:
                held.add(key_of(row))
                added.append(row)
        if added:
            write(rows + added, path)
    return added


def matching(rows, **match):
    """The rows whose every key in `match` has its value."""
    return [row for row in rows if all(row[key] == value for key, value in match.items())]


def latest(rows, **match):
    """The matching row measured last, or None."""
    found = matching(rows, **match)
    return max(found, key=lambda row: row["date"]) if found else None


def furthest(rows, **match):
    """The matching row of the furthest stage (the latest of it), or None."""
    found = matching(rows, **match)
    return max(found, key=lambda row: (row["stage"], row["date"])) if found else None


def key_of(row):
    return tuple(row[key] for key in KEY)


def row_id(layers, objective, k, estimator):
    """A row's name on the command line and in its run folder's: "vae-k1", "two-layers-iwae-k50-dreg"."""
    return f"{'two-layers-' if layers == 2 else ''}{'iwae' if objective == 'iwae' else 'vae'}-k{k}" \
           f"{'' if estimator == 'standard' else '-' + estimator}"


# Every row of Table 1 by name, and the named sets of rows.
ROWS = {row_id(layers, *row): (layers, *row) for layers in (1, 2) for row in ROW_ORDER}
ROW_SETS = {"one-layer": [row_id(1, *row) for row in TABLE1], "two-layers": [row_id(2, *row) for row in TABLE1]}
ROW_SETS["all"] = ROW_SETS["one-layer"] + ROW_SETS["two-layers"]


def row_name(row):
    """Table 1's name of a row: "VAE, k = 50", "IWAE, k = 50, DReG"."""
    estimator = f", {ESTIMATOR_NAMES[row['estimator']]}" if row["estimator"] in ESTIMATOR_NAMES else ""
    return f"{'IWAE' if row['objective'] == 'iwae' else 'VAE'}, k = {row['k']}{estimator}"


def setting_name(row):
    """What a row of this repo ran with beyond Table 1's row: "batch 20, ε 1.2755e-07, glorot-mean" (and its layers
    where there are two)."""
    named = ["two stochastic layers"] if row["layers"] == 2 else []
    named += [f"batch {row['batch_size']}", f"ε {row['adam_eps']:g}"]
    named += [row["init"]] if row["init"] != SETTING["init"] else []
    named += [f"β1 {row['adam_beta1']:g}"] if row["adam_beta1"] != SETTING["adam_beta1"] else []
    named += [f"seed {row['seed']}"] if row.get("seed", DEFAULT_SEED) != DEFAULT_SEED else []
    named += ["bfloat16"] if row.get("precision") == PRECISION[True] else []
    return ", ".join(named)


def setting_flags(values):
    """The experiments command's flags for a setting that differs from its defaults: ["--batch-size", "20", ...]."""
    return [text for key, default in SETTING.items() if values[key] != default
            for text in (f"--{key.replace('_', '-')}", f"{values[key]:g}" if isinstance(values[key], float)
                         else str(values[key]))]


def command(row):
    """The one command that trains, evaluates and records exactly this row: its row, seed, setting, and stages up to
    its own."""
    name = row_id(row["layers"], row["objective"], row["k"], row["estimator"])
    return " ".join(["python -m experiments.burda2015", name, "--stages", str(row["stage"] + 1), "--seeds",
                     str(row["seed"]), *setting_flags(row), *(["--bf16"] if row["precision"] == PRECISION[True] else [])])


def stage_row(folder, machine, note="", bound_samples=BOUND_SAMPLES):
    """The data row of one evaluated stage folder, or None where test.py has not written its metrics there."""
    folder = Path(folder)
    metrics_file = folder / "mnist_vae_metrics.json"
    if not metrics_file.is_file() or not (folder / "mnist_vae.pt").is_file():
        return None
    metrics = read_metrics(metrics_file)
    if metrics["iw_samples"] != bound_samples:
        raise UserError(f"{metrics_file} has the bound with k = {metrics['iw_samples']}; the table's is k = "
                        f"{bound_samples}: rerun test.py on {folder} with --iw-samples {bound_samples}")
    checkpoint, stored = read_checkpoint(folder)
    row = {**trained_row(checkpoint, stored, stage_of(folder)),
           "nll": round(metrics["iw_nll_nats"], 2), "nll_se": round(metrics["iw_nll_se"], 2), "nll_k100": None,
           "neg_elbo": round(metrics["negative_elbo_nats"], 2), "neg_elbo_se": round(metrics["negative_elbo_se"], 2),
           "active_units": "+".join(map(str, metrics.get("active_units_per_layer", [metrics["active_units"]]))),
           "active_statistic": ACTIVE_STATISTICS[0],
           "units_removed": "+".join(map(str, metrics.get("units_removed", []))), **removal_check(metrics),
           "kl_active_units": "+".join(map(str, metrics["kl_active_units_per_layer"])) if "kl_units_removed" in metrics
           else "", **removal_check(metrics, "kl_"),
           "train_minutes": round(sum(entry["seconds"] for entry in checkpoint["history"]) / 60, 1),
           "machine": machine, "date": datetime.date.fromtimestamp(metrics_file.stat().st_mtime).isoformat(),
           "note": note}
    return {**row, "command": command(row)}


def removal_check(metrics, by=""):
    """The data's columns of Burda et al.'s removal check (units.py): the bound's change in nats ± its paired standard
    error with the inactive units removed (by="kl_": those the KL count calls inactive); empty for metrics from
    before the check."""
    if f"{by}units_removed" not in metrics:
        return {f"{by}removal_nats": None, f"{by}removal_se": None}
    return {f"{by}removal_nats": round(metrics[f"{by}removal_difference_nats"], 3),
            f"{by}removal_se": round(metrics[f"{by}removal_difference_se"], 3)}


def trained_row(checkpoint, stored, stage):
    """What names a checkpoint of the table in the data: its row, setting, seed, precision, stage and epochs."""
    return {"source": THIS_REPO, "layers": stored.stochastic_layers, "objective": stored.objective, "k": stored.k,
            "estimator": stored.estimator, **{key: getattr(stored, key) for key in SETTING}, "seed": stored.seed,
            "precision": PRECISION[stored.bf16], "stage": stage, "epochs": len(checkpoint["history"])}


def read_checkpoint(folder):
    """(the checkpoint, its config) of the VAE in a run's or stage's folder, read and checked by checkpoints.py."""
    import torch  # here: the pages need no torch

    import checkpoints

    _, checkpoint, stored = checkpoints.load(SimpleNamespace(ckpt_dir=folder, dataset="mnist"), "vae", {},
                                             torch.device("cpu"), needs=("history",))
    return checkpoint, stored


METRICS_NEEDED = ("iw_samples", "iw_nll_nats", "iw_nll_se", "negative_elbo_nats", "negative_elbo_se", "active_units")


def read_metrics(file):
    """test.py's metrics of a stage, or one line naming the file that is damaged."""
    try:
        metrics = json.loads(Path(file).read_text())
        missing = [key for key in METRICS_NEEDED if key not in metrics]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
    except (OSError, ValueError, TypeError) as error:
        raise UserError(f"{file} is damaged ({error}); delete it and rerun to evaluate that stage again") from None
    figures = [key for key in ("iw_nll_nats", "iw_nll_se", "negative_elbo_nats", "negative_elbo_se") if not (
        type(metrics[key]) in (int, float) and math.isfinite(metrics[key]))]
    if figures:  # a diverged model's bound: a figure that is no result
        raise UserError(f"stage {stage_of(Path(file).parent)}: {file} holds "
                        f"{', '.join(f'{key} {metrics[key]!r}' for key in figures)}, not finite numbers; nothing is "
                        f"recorded for it: delete {Path(file).parent} and rerun to train and evaluate it again")
    return metrics


def stage_of(folder):
    """The stage a stage<i> folder holds, or None for any other folder."""
    match = re.fullmatch(r"stage(\d+)", Path(folder).name)
    return int(match[1]) if match else None


def stage_folders(run_folder):
    """A run folder's stage<i>/ folders, in stage order."""
    found = [folder for folder in Path(run_folder).iterdir() if folder.is_dir() and stage_of(folder) is not None]
    return sorted(found, key=stage_of)


def this_machine():
    """The machine a row ran on, in the data's words: "2-core Intel Xeon VM", or the GPU's name."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)  # "Intel(R) Xeon(R) Platinum 8480+": "Intel Xeon"
    processor = " ".join(re.sub(r"\((R|TM)\)|CPU|Processor|@.*", " ", found[1]).split()[:2]) if found else ""
    virtual = " VM" if re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.M) else ""
    return f"{len(os.sched_getaffinity(0))}-core {processor or 'CPU'}{virtual}"
