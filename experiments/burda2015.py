"""Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1, in one command: each row and
seed is a job that trains its stages in its own run folder, evaluates every finished stage with the k = 5000 bound
and records it in results/burda2015.csv; then the pages' tables and figure are rewritten from the data.

    python -m experiments.burda2015 one-layer --stages 5                  # the six one-layer rows, stages 0-4
    python -m experiments.burda2015 vae-k1 iwae-k50 --stages 5 --seeds 1337 1 2
    python -m experiments.burda2015 --objective iwae --k 50 --stages 5    # one row by its flags
    python -m experiments.burda2015 two-layers --init glorot-mean --executor slurm --slurm-partition gpu --gpus-per-job 1

Burda et al.'s network (784-200-200-50 tanh, or its two stochastic layers), dynamically binarised MNIST and their
schedule: stage i trains 3^i epochs at learning rate 1e-3 * 10^(-i/7), 3,280 epochs in 8 stages. Rerun the same
command to continue where anything stopped: finished stages are not trained again, recorded ones cost nothing.
Locally, --jobs jobs run at a time, one thread each; on a Slurm cluster each job is submitted through submitit, and
one that reaches its time limit or is preempted is requeued and continues from its last epoch.
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from tqdm import tqdm

import config
from cli import UserError
from experiments import job, results
from files import check_writable

ROOT = results.ROOT
MAX_STAGES = 8
ROW_KEYS = ("objective", "k", "estimator", "stochastic_layers")
# Tests shrink the work through this variable, a JSON object: {"network": {config key: value}, "bound_samples": N,
# "epochs_per_stage": N}. Rows recorded under it say so in their note.
TEST_OVERRIDE = "BURDA2015_TEST_OVERRIDE"
POLL_SECONDS = 2.0
SLURM_MINUTES = 24 * 60  # a job's time limit unless --slurm-time says otherwise
SLURM_ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "COMPLETING")


def arguments():
    """The command's own arguments, beyond the config's setting and row flags."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("rows", nargs="*", metavar="ROW",
                        help=f"rows by name ({', '.join(results.ROWS)}) or by set ({', '.join(results.ROW_SETS)}); "
                             "none: the row that --objective, --k, --estimator and --stochastic-layers name")
    parser.add_argument("--stages", type=int, default=MAX_STAGES,
                        help=f"train stages 0 to STAGES-1 (default: {MAX_STAGES}, the full schedule)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[config.seed], metavar="SEED",
                        help=f"a job per row and seed (default: {config.seed})")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="local jobs at a time, one thread each (default: this machine's cores, %(default)s)")
    parser.add_argument("--machine", help="the machine each row names (default: this one, e.g. '2-core Intel Xeon "
                                          "VM', or the GPU's name)")
    parser.add_argument("--note", default="", help="anything else that distinguishes these rows")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "burda2015",
                        help="run folders live in RUNS/<row>-<setting>[-seed<seed>]/ (default: runs/burda2015)")
    parser.add_argument("--results", type=Path, default=results.DATA,
                        help="the data the rows go to (default: the repo's; only its rows rewrite the pages)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="local processes, or Slurm jobs through submitit (default: local)")
    parser.add_argument("--slurm-partition", help="with --executor slurm: the partition (default: the cluster's)")
    parser.add_argument("--slurm-time", type=int, metavar="MINUTES",
                        help="with --executor slurm: each job's time limit; at it the job is requeued and continues "
                             "(default: 1440)")
    parser.add_argument("--gpus-per-job", type=int, help="with --executor slurm: GPUs per job (default: 0)")
    return parser


def parse(argv=None):
    """(the jobs' specs, the command's arguments), everything checked that can be before any work."""
    own = arguments()
    keys = ROW_KEYS + tuple(results.SETTING) + ("bf16", "data_root")
    cfg, overrides = config.parse(keys, argv, description=__doc__, prog="python -m experiments.burda2015",
                                  script_defaults={**results.SETTING, "model": "vae"}, parents=[own])
    args = SimpleNamespace(**{action.dest: getattr(cfg, action.dest) for action in own._actions})
    if not 1 <= args.stages <= MAX_STAGES:
        raise UserError(f"--stages must be from 1 to {MAX_STAGES} (the schedule's stages), got {args.stages}")
    for seed in args.seeds:
        config.validate({"seed": seed})
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    slurm_only = [flag for flag in ("slurm_partition", "slurm_time", "gpus_per_job") if getattr(args, flag) is not None]
    if args.executor == "local" and slurm_only:
        raise UserError(f"--{slurm_only[0].replace('_', '-')} is for Slurm jobs: add --executor slurm")
    if args.executor == "slurm":
        if shutil.which("sbatch") is None:
            raise UserError("--executor slurm: no sbatch on this machine's PATH; run it where Slurm's commands are")
        for flag, least in (("slurm_time", 1), ("gpus_per_job", 0)):
            if getattr(args, flag) is not None and getattr(args, flag) < least:
                raise UserError(f"--{flag.replace('_', '-')} must be at least {least}, got {getattr(args, flag)}")
    return job_specs(row_names(args.rows, overrides), cfg, args), args


def row_names(names, overrides):
    """The rows asked for, as (layers, objective, k, estimator): by name, by set, or by the row's flags."""
    by_flags = [key for key in ROW_KEYS if key in overrides]
    if names and by_flags:
        raise UserError(f"name the rows or give one row's flags, not both: --{by_flags[0].replace('_', '-')} "
                        f"beside {names[0]}")
    if not names:
        row = {key: overrides.get(key, getattr(config, key)) for key in ROW_KEYS}
        return [(row["stochastic_layers"], row["objective"], row["k"], row["estimator"])]
    chosen = []
    for name in names:
        if name not in results.ROWS and name not in results.ROW_SETS:
            raise UserError(f"unknown row {name!r}: choose from {', '.join(results.ROWS)}, or a set: "
                            f"{', '.join(results.ROW_SETS)}")
        chosen += results.ROW_SETS.get(name, [name])
    return [results.ROWS[name] for name in dict.fromkeys(chosen)]


def job_specs(rows, cfg, args):
    """A job's spec per row and seed: everything experiments/job.py needs, as plain data."""
    override = json.loads(os.environ.get(TEST_OVERRIDE) or "{}")
    setting = {key: getattr(cfg, key) for key in results.SETTING}
    note = "; ".join(filter(None, [args.note, "test-sized (" + TEST_OVERRIDE + ")" if override else ""]))
    specs = []
    for layers, objective, k, estimator in rows:
        network = {**(config.BURDA2015_TWO_LAYERS if layers == 2 else config.BURDA2015), **override.get("network", {})}
        for seed in dict.fromkeys(args.seeds):
            name = results.row_id(layers, objective, k, estimator)
            specs.append({"row": name, "layers": layers, "objective": objective, "k": k, "estimator": estimator,
                          "stochastic_layers": layers, **setting, "seed": seed,
                          "precision": results.PRECISION[cfg.bf16], "stages": args.stages,
                          "folder": str((args.runs / folder_name(name, setting, seed, cfg.bf16)).resolve()),
                          "data_root": str(Path(cfg.data_root).resolve()), "results": str(args.results.resolve()),
                          "machine": args.machine, "note": note, "network": network, "threads": 1,
                          "bound_samples": override.get("bound_samples", results.BOUND_SAMPLES),
                          "epochs_per_stage": override.get("epochs_per_stage")})
    return specs


def folder_name(name, setting, seed, bf16=False):
    """A job's run folder: the row, its setting, and its seed and precision where they are not the default."""
    init = "" if setting["init"] == config.init else f"-{setting['init']}"
    beta1 = "" if setting["adam_beta1"] == config.adam_beta1 else f"-beta1-{setting['adam_beta1']:g}"
    seed_part = "" if seed == config.seed else f"-seed{seed}"
    return f"{name}-batch{setting['batch_size']}-eps{setting['adam_eps']:g}{init}{beta1}{seed_part}" \
           f"{'-bf16' if bf16 else ''}"


def check_run_folder(spec):
    """Refuse a run folder that holds another run, or a damaged checkpoint or metrics file, before any work."""
    folder = Path(spec["folder"])
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is not a run folder: it is a file; move it away")
    if not folder.is_dir():
        return
    held = [folder / "ckpts"] + results.stage_folders(folder)
    for checkpoint_folder in [path for path in held if (path / "mnist_vae.pt").exists()]:
        _, stored = results.read_checkpoint(checkpoint_folder)
        other = [f"{key} {getattr(stored, key)}" for key in ROW_KEYS + tuple(results.SETTING) + ("seed",)
                 if getattr(stored, key) != spec[key]]
        other += [f"precision {results.PRECISION[stored.bf16]}"] if results.PRECISION[stored.bf16] != spec["precision"] \
            else []
        if other:
            raise UserError(f"{checkpoint_folder / 'mnist_vae.pt'} is a run of another row ({', '.join(other)}), not "
                            f"of {spec['row']} seed {spec['seed']}; move {folder} away")
        metrics = checkpoint_folder / "mnist_vae_metrics.json"
        if metrics.exists():
            results.read_metrics(metrics)


def main():
    specs, args = parse()
    rows = results.read(args.results)
    results.check_writable(args.results)
    check_writable(args.runs, "--runs")
    for spec in specs:
        check_run_folder(spec)
    to_do = [spec for spec in specs if job.stages_to_do(spec, rows)]
    for spec in specs:
        done = spec["stages"] - len(job.stages_to_do(spec, rows))
        print(f"{spec['row']}, seed {spec['seed']}: {done} of {spec['stages']} stages recorded; log "
              f"{Path(spec['folder']) / job.LOG}")
    if not to_do:
        print(f"every stage asked for is in {args.results}: nothing to do")
        return
    import torch

    import data

    data.load("mnist", specs[0]["data_root"], torch.device("cpu"))  # here, once: a download or a refusal, not N
    if args.executor == "slurm":
        check_slurm(args)
    progress = Progress(specs, args.results)
    try:
        if args.executor == "local":
            print(f"{len(to_do)} jobs, {min(args.jobs, len(to_do))} at a time, one thread each", flush=True)
            failed = run_local(to_do, args.jobs, progress)
        else:
            failed = run_slurm(to_do, args, progress)
    finally:
        progress.close()
        if args.results.resolve() == results.DATA and progress.added:
            from experiments import pages

            pages.main()
    if failed:
        raise UserError("; ".join(failed))


class Progress:
    """One bar over every job's stages, moved by what the data holds; each newly recorded stage gets a line."""

    def __init__(self, specs, path):
        self.specs, self.path, self.added = specs, path, 0
        self.seen = self._recorded()
        self.bar = tqdm(total=sum(spec["stages"] for spec in specs), initial=len(self.seen), unit="stage",
                        desc="Table 1", disable=None)

    def _recorded(self):
        rows = results.read(self.path)
        return {(spec["row"], spec["seed"], stage): row for spec in self.specs
                for stage, row in job.recorded(spec, rows).items()}

    def update(self):
        now = self._recorded()
        for name, seed, stage in sorted(now.keys() - self.seen.keys()):
            row = now[name, seed, stage]
            self.bar.write(f"recorded {name}, seed {seed}, stage {stage}: {row['nll']:.2f} ± {row['nll_se']:.2f} nats")
        self.added += len(now.keys() - self.seen.keys())
        self.bar.update(len(now) - len(self.seen))
        self.seen = now

    def close(self):
        self.update()
        self.bar.close()


def run_local(specs, at_a_time, progress):
    """Each job a process of this machine, `at_a_time` of them at once; returns a line per failed job. A stop
    (Ctrl-C, SIGTERM) reaches the running jobs, which keep every finished epoch."""
    running, lock, stopping = [], threading.Lock(), threading.Event()

    def one(spec):
        with lock:
            if stopping.is_set():
                return None
            process = subprocess.Popen([sys.executable, "-m", "experiments.job", json.dumps(spec)], cwd=ROOT,
                                       env={**os.environ, cli.STOP_WITH_PARENT: str(os.getpid())},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            running.append(process)
        said = process.communicate()[1].strip().splitlines()
        if process.returncode == 0:
            return None
        if said and process.returncode > 0:  # the job's own line, which names its log
            return f"{spec['row']}, seed {spec['seed']}: {said[-1].removeprefix('error: ')}"
        return f"{spec['row']}, seed {spec['seed']}: {job.ended(process.returncode)} (log {Path(spec['folder']) / job.LOG})"

    pool = concurrent.futures.ThreadPoolExecutor(at_a_time)
    futures = [pool.submit(one, spec) for spec in specs]
    try:
        while concurrent.futures.wait(futures, timeout=POLL_SECONDS)[1]:
            progress.update()
    except KeyboardInterrupt:
        with lock:
            stopping.set()
            for process in running:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        pool.shutdown(cancel_futures=True)
        raise cli.Stopped("every finished epoch and recorded stage is kept; rerun the same command to continue")
    pool.shutdown()
    return [line for line in (future.result() for future in futures) if line]


def check_slurm(args):
    """Ask Slurm, before any job, whether it would take these jobs (sbatch --test-only submits nothing): a controller
    that does not answer, a rejected partition or time limit is one line."""
    argv = ["sbatch", "--test-only", "--wrap", "true", "--time", str(args.slurm_time or SLURM_MINUTES)]
    argv += ["--partition", args.slurm_partition] if args.slurm_partition else []
    argv += ["--gpus-per-node", str(args.gpus_per_job)] if args.gpus_per_job else []
    try:
        answer = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise UserError("Slurm did not answer sbatch --test-only within 2 minutes; is its controller running?") from None
    if answer.returncode != 0:
        said = [line.split("error: ", 1)[1] for line in answer.stderr.splitlines() if "error: " in line]
        raise UserError(f"Slurm would not take these jobs: {said[0] if said else answer.stderr.strip()} "
                        f"(asked with {' '.join(argv)})")


def run_slurm(specs, args, progress):
    """Each job a Slurm job through submitit, requeued at its time limit or on preemption; returns a line per failed
    job. A job this command submitted before and Slurm still holds is followed, not submitted again."""
    import submitit

    logs = args.runs.resolve() / "slurm"
    executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
    executor.update_parameters(name="burda2015", timeout_min=args.slurm_time or SLURM_MINUTES, nodes=1, tasks_per_node=1,
                               cpus_per_task=1, gpus_per_node=args.gpus_per_job or 0,
                               slurm_setup=[f"cd {shlex.quote(str(ROOT))}"],  # where experiments.job is imported from
                               **({"slurm_partition": args.slurm_partition} if args.slurm_partition else {}))
    jobs = []
    for spec in specs:
        known = Path(spec["folder"]) / "slurm-job"
        previous = submitit.SlurmJob(logs, known.read_text().strip()) if known.is_file() else None
        if previous is not None and previous.state in SLURM_ACTIVE:
            submitted = previous
        else:
            submitted = executor.submit(job.SlurmJob(), spec)
            known.parent.mkdir(parents=True, exist_ok=True)
            known.write_text(f"{submitted.job_id}\n")
        print(f"{spec['row']}, seed {spec['seed']}: Slurm job {submitted.job_id}, its log {submitted.paths.stdout}",
              flush=True)
        jobs.append((spec, submitted))
    try:
        while not all(submitted.done() for _, submitted in jobs):
            progress.update()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        raise cli.Stopped("the Slurm jobs go on (scancel stops them); rerun the same command to follow them") from None
    failed = []
    for spec, submitted in jobs:
        try:
            submitted.result()
        except Exception as error:  # submitit's error holds the job's traceback: its last line says what failed
            lines = str(error).strip().splitlines()
            failed.append(f"{spec['row']}, seed {spec['seed']}: {lines[-1] if lines else error} "
                          f"(Slurm job {submitted.job_id}, log {submitted.paths.stderr})")
    return failed


if __name__ == "__main__":
    cli.run(main)
