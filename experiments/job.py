"""One job of the table: a row of Burda et al.'s Table 1 with one seed, trained through its stages in its own run
folder, each stage's checkpoint evaluated with the k = 5000 bound and recorded in the results data as it finishes.

experiments/burda2015.py builds a job's spec and runs it here, as a process of this machine
(`python -m experiments.job SPEC`) or as a Slurm job through submitit (SlurmJob). Stopped anywhere and run again, a
job continues: train.py resumes from its last epoch, a stage's copy and its metrics are whole or absent, and a stage
already recorded is not recorded again.
"""
import json
import os
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import submitit

import cli
import config
from cli import UserError
from experiments import results
from files import LockHeld, atomic_path, exclusive_lock

ROOT = results.ROOT
LOG = "job.log"  # each job's log, in its run folder


def epochs_through(stage, epochs_per_stage):
    """The epochs trained by the end of `stage`: Burda et al.'s schedule gives stage i 3^i epochs (1, 4, 13, 40,
    121, 364, 1093, 3280 in all); a test's spec may give each stage a fixed count instead."""
    return sum(epochs_per_stage or 3 ** index for index in range(stage + 1))


def learning_rate(stage):
    """Burda et al.'s schedule: stage i trains at 1e-3 * 10^(-i/7)."""
    return 1e-3 * 10 ** (-stage / 7)


def recorded(spec, rows):
    """The job's stages that the data already holds: {stage: its row}."""
    key = tuple(results.THIS_REPO if key == "source" else spec[key] for key in results.KEY[:-1])  # all but the stage
    return {row["stage"]: row for row in rows if results.key_of(row)[:-1] == key and row["stage"] < spec["stages"]}


def stages_to_do(spec, rows):
    """The job's stages that the data does not hold yet, in order."""
    return sorted(set(range(spec["stages"])) - recorded(spec, rows).keys())


def run(spec):
    """Train, evaluate and record every stage of the job that the data does not hold yet."""
    folder = Path(spec["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(folder / ".job.lock"), open(folder / LOG, "a") as log:
            _run(spec, folder, log)
    except LockHeld as held:
        raise UserError(f"{folder} is being run by another job (process {held.holder or '?'}); wait for it or "
                        "stop it") from None


def _run(spec, folder, log):
    todo = stages_to_do(spec, results.read(spec["results"]))
    if not todo:
        return
    machine = spec["machine"] or results.this_machine()
    environment = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    row_flags = config.as_flags({**spec["network"], **{key: spec[key] for key in (
        "objective", "k", "estimator", "stochastic_layers", *results.SETTING, "seed")},
        "bf16": spec["precision"] == results.PRECISION[True]})
    for stage in range(todo[-1] + 1):
        stage_folder = folder / f"stage{stage}"
        checkpoint = stage_folder / "mnist_vae.pt"
        if not checkpoint.is_file():
            _call(["train.py", "--model", "vae", "--dataset", "mnist", *row_flags, "--data-root", spec["data_root"],
                   "--ckpt-dir", folder / "ckpts", "--resume", "--epochs", epochs_through(stage, spec["epochs_per_stage"]),
                   "--learning-rate", learning_rate(stage)], log, environment, f"training stage {stage}")
            with atomic_path(checkpoint) as temporary:  # the stage's copy is whole or absent
                shutil.copyfile(folder / "ckpts" / "mnist_vae.pt", temporary)
        if stage not in todo:
            continue
        metrics = stage_folder / "mnist_vae_metrics.json"
        if not metrics.is_file() or results.read_metrics(metrics)["iw_samples"] != spec["bound_samples"]:
            _call(["test.py", "--model", "vae", "--dataset", "mnist", "--ckpt-dir", stage_folder, "--plot-dir",
                   stage_folder, "--iw-samples", spec["bound_samples"], "--data-root", spec["data_root"]], log,
                  environment, f"evaluating stage {stage}")
        row = results.stage_row(stage_folder, machine, spec["note"], spec["bound_samples"])
        for added in results.record([row], spec["results"]):
            print(f"recorded stage {added['stage']}: {added['nll']:.2f} ± {added['nll_se']:.2f} nats", file=log,
                  flush=True)


def ended(code):
    """A process's exit code in words: "exit 1", "killed by SIGKILL (as the out-of-memory killer kills)"."""
    if code >= 0:
        return f"exit {code}"
    name = signal.Signals(-code).name
    return f"killed by {name}{' (as the out-of-memory killer kills)' if name == 'SIGKILL' else ''}"


def _call(argv, log, environment, doing):
    """Run one of the project's scripts with its output in the job's log; a failure is one line with its cause (the
    script's own error line, or the signal that killed it), the step and the log."""
    print(f"$ {' '.join(map(str, argv))}", file=log, flush=True)
    process = subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**environment, cli.STOP_WITH_PARENT: str(os.getpid())})
    try:
        code = process.wait()
    except KeyboardInterrupt:  # stopped: the script stops the same way, keeping each finished epoch
        process.terminate()
        process.wait()
        raise
    if code != 0:
        said = [line for line in Path(log.name).read_text(errors="replace").splitlines() if line.startswith("error: ")]
        cause = said[-1].removeprefix("error: ") if code > 0 and said else ended(code)
        raise UserError(f"{argv[0]} failed {doing}: {cause}; see {log.name}")


class SlurmJob(submitit.helpers.Checkpointable):
    """A job as submitit runs it on a Slurm node. At its time limit or on preemption submitit calls checkpoint(),
    which requeues the same call: run() then continues from the last epoch on disk."""

    def __call__(self, spec):
        run(spec)


def main():
    cli.catch_interrupts()  # SIGTERM, from the command that started this job, stops it as Ctrl-C does
    run(json.loads(sys.argv[1]))


if __name__ == "__main__":
    cli.run(main)
