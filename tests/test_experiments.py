"""The table's one command, end to end on tiny generated data: rows trained, evaluated and recorded, locally and
through a real Slurm; stopped and rerun without a row lost or doubled; bad input refused before any work."""
import functools
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, write_idx
from experiments import burda2015, results

# Two stages of one epoch each, a tiny network and a small bound: seconds, not hours.
TINY = {"network": {"hidden_dims": 16, "latent_dims": 4}, "bound_samples": 10, "epochs_per_stage": 1}
ROWS = ("vae-k1", "iwae-k5")
# What a row's figures are: everything but when, where and how long.
FIGURES = ("layers", "objective", "k", "estimator", "batch_size", "adam_eps", "init", "adam_beta1", "seed", "stage",
           "epochs", "nll", "nll_se", "neg_elbo", "neg_elbo_se", "active_units", "command", "note")


def arguments(folder, args, stages):
    return [*map(str, args), *(["--stages", str(stages)] if stages else []), "--batch-size", "150", "--data-root",
            str(folder / "data"), "--runs", str(folder / "runs"), "--results", str(folder / "data.csv")]


def command(folder, *args, stages=2, **popen):
    """The table's command as a process, on the tiny data in `folder`, its rows in folder/data.csv."""
    argv = [sys.executable, "-m", "experiments.burda2015", *arguments(folder, args, stages)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", burda2015.TEST_OVERRIDE: json.dumps(TINY)}
    if popen:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def refused(folder, *args, stages=2):
    """The command run in this process, where it must stop before any work: its one line on stderr."""
    import cli

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as stopped:
        patch.setattr(sys, "argv", ["burda2015.py", *arguments(folder, args, stages)])
        patch.setenv(burda2015.TEST_OVERRIDE, json.dumps(TINY))
        patch.setattr(burda2015, "run_local", None)  # any work at all would fail loudly
        cli.run(burda2015.main)
    assert stopped.value.code not in (0, None)
    return stopped.value.code


def table_folder(folder):
    write_idx(folder / "data" / "MNIST" / "raw")
    (folder / "data.csv").write_text(",".join(results.COLUMNS) + "\n")
    return folder


def figures(path):
    return sorted(tuple(row[key] for key in FIGURES) for row in results.read(path))


def finished(process):
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def start_table(tmp_path_factory, started):
    """The command on two rows, uninterrupted: (its folder, its process)."""
    folder = table_folder(tmp_path_factory.mktemp("table"))
    return folder, command(folder, *ROWS, start_new_session=True)


@functools.cache  # asked once: sinfo waits seconds for a controller that is down
def slurm_is_running():
    """None where a Slurm here takes jobs, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm commands here (.ci/run installs and starts Slurm)"
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if states.returncode != 0 or not {"idle", "mix", "alloc"} & set(states.stdout.split()):
        return f"no Slurm node takes jobs here: {(states.stderr or states.stdout).strip() or 'sinfo lists none'}"
    return None


def start_slurm(tmp_path_factory, started):
    """The command on one row and stage through Slurm: (its folder, its process), or None without a Slurm."""
    if slurm_is_running() is not None:
        return None
    folder = table_folder(tmp_path_factory.mktemp("slurm"))
    return folder, command(folder, "iwae-k5", "--executor", "slurm", "--slurm-time", "10", stages=1,
                           start_new_session=True)




@pytest.fixture(scope="module")
def table(started_early):
    """The command run once, uninterrupted, on two rows: (folder, its CompletedProcess)."""
    folder, process = started_early["table"]
    return folder, finished(process)


def test_the_command_trains_evaluates_and_records_every_stage_of_each_row(table):
    folder, result = table
    assert result.returncode == 0, result.stderr
    rows = results.read(folder / "data.csv")
    assert sorted((row["objective"], row["k"], row["stage"], row["epochs"]) for row in rows) == [
        ("elbo", 1, 0, 1), ("elbo", 1, 1, 2), ("iwae", 5, 0, 1), ("iwae", 5, 1, 2)]
    for row in rows:
        assert row["seed"] == 1337 and row["batch_size"] == 150 and row["source"] == results.THIS_REPO
        assert row["command"] == (f"python -m experiments.burda2015 {'vae-k1' if row['k'] == 1 else 'iwae-k5'} "
                                  f"--stages {row['stage'] + 1} --seeds 1337 --batch-size 150")
        assert "test-sized" in row["note"] and row["machine"] == results.this_machine()
        metrics = json.loads((folder / "runs" / f"{'vae-k1' if row['k'] == 1 else 'iwae-k5'}-batch150-eps1e-08" /
                              f"stage{row['stage']}" / "mnist_vae_metrics.json").read_text())
        assert metrics["iw_samples"] == 10 and row["nll"] == round(metrics["iw_nll_nats"], 2)
    for name in ROWS:  # each job's log is named in the output and holds its scripts' output
        log = folder / "runs" / f"{name}-batch150-eps1e-08" / "job.log"
        assert str(log) in result.stdout and "Saved" in log.read_text() and "-log p(x) <=" in log.read_text()


def test_a_stage_is_trained_on_the_last_one_at_the_schedule_s_learning_rate(table):
    folder, _ = table
    stages = [torch.load(folder / "runs" / "iwae-k5-batch150-eps1e-08" / f"stage{stage}" / "mnist_vae.pt",
                         weights_only=True) for stage in (0, 1)]
    assert [len(checkpoint["history"]) for checkpoint in stages] == [1, 2]
    assert stages[1]["history"][0] == stages[0]["history"][0]  # stage 1 continued stage 0's run
    assert stages[1]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 10 ** (-1 / 7))
    assert stages[1]["model_args"]["k"] == 5 and stages[1]["model_args"]["hidden_dims"] == 16


def test_rerunning_the_command_costs_nothing_and_records_nothing_twice(table):
    folder, _ = table
    before = (folder / "data.csv").read_bytes()
    again = command(folder, *ROWS)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and (folder / "data.csv").read_bytes() == before


def wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def processes_in(session, running=""):
    """The pids of the processes in the process session `session` (whose command line holds `running`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[3]) == session and \
                    running.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except (OSError, IndexError):  # a process that ended while being read
            continue
    return found


def trainers_in(session):
    return processes_in(session, "train.py")


def stopped_killed_rerun(folder, table_process):
    """On one row, once the table's own run is done: the command stopped by SIGTERM while stage 1 trains, its trainer
    killed, the command itself killed, then rerun to the end."""
    table_process.wait(timeout=600)  # then the second core is this one's
    log = folder / "runs" / "iwae-k5-batch150-eps1e-08" / "job.log"
    process = command(folder, "iwae-k5", start_new_session=True)
    wait_for(lambda: results.read(folder / "data.csv"))  # stopped as stage 0's row lands, before stage 1 is done
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.strip().splitlines()[-1].startswith("stopped: "), stderr
    assert "Traceback" not in stderr and [row["stage"] for row in results.read(folder / "data.csv")] == [0]
    process = command(folder, "iwae-k5", start_new_session=True)
    wait_for(lambda: trainers_in(process.pid) or process.poll() is not None)
    trainer = trainers_in(process.pid)
    assert trainer, f"no trainer ran: {process.communicate()}, {log.read_text()[-2000:]}"
    os.kill(trainer[0], signal.SIGKILL)  # as the out-of-memory killer would
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and stderr.strip().splitlines()[-1] == (
        f"error: iwae-k5, seed 1337: train.py failed training stage 1: killed by SIGKILL (as the out-of-memory killer "
        f"kills); see {log}"), stderr
    process = command(folder, "iwae-k5", start_new_session=True)
    wait_for(lambda: trainers_in(process.pid))
    os.kill(process.pid, signal.SIGKILL)  # the command alone: its job and trainer hear of it and stop
    process.communicate(timeout=60)
    wait_for(lambda: not processes_in(process.pid), seconds=8)  # where orphans would train and evaluate on
    assert not processes_in(process.pid)
    assert [row["stage"] for row in results.read(folder / "data.csv")] == [0]
    rerun = command(folder, "iwae-k5")
    assert rerun.returncode == 0, rerun.stderr


class Background(threading.Thread):
    """A scenario run on a thread of its own; result() waits for it and raises what it raised."""

    def __init__(self, scenario, *args):
        super().__init__(target=self._run, args=(scenario, *args), daemon=True)
        self.error = None

    def _run(self, scenario, *args):
        try:
            scenario(*args)
        except BaseException as error:  # re-raised by result(), in the test
            self.error = error

    def result(self):
        self.join(timeout=900)
        if self.is_alive():
            raise AssertionError("the scenario did not finish in 15 minutes")
        if self.error is not None:
            raise self.error


def start_stops(tmp_path_factory, started):
    folder = table_folder(tmp_path_factory.mktemp("stops"))
    background = Background(stopped_killed_rerun, folder, started["table"][1])
    background.start()
    return folder, background


START_EARLY = {"table": start_table, "slurm": start_slurm, "stops": start_stops}


def test_a_run_stopped_its_trainer_killed_then_itself_killed_and_rerun_records_each_row_once(table, started_early):
    folder, background = started_early["stops"]
    background.result()
    expected = [row for row in figures(table[0] / "data.csv") if row[2] == 5]
    assert figures(folder / "data.csv") == expected


def test_a_job_that_fails_for_a_full_disk_says_so_in_the_command_s_line(tmp_path):
    folder, runs = table_folder(tmp_path), tmp_path / "runs"
    runs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", runs], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        result = command(folder, "vae-k1")  # its runs on the tmpfs, too small for a checkpoint
        line = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1 and line.startswith("error: vae-k1, seed 1337: train.py failed training stage "
                                                          f"0: not enough space in {runs}"), result.stderr
        assert line.endswith(f"see {runs / 'vae-k1-batch150-eps1e-08' / 'job.log'}")
    finally:
        subprocess.run(["umount", "-l", runs], capture_output=True)


def _record_after_a_barrier(path, row, barrier):
    read = results.read

    def read_then_wait(*args, **kwargs):  # every job reads the data before any writes it, as jobs finishing together do
        rows = read(*args, **kwargs)
        if kwargs.get("written_for"):  # the write's read-back
            return rows
        try:
            barrier.wait(timeout=1)
        except Exception:  # another holds the lock: it waits for this one, not the barrier
            pass
        return rows

    results.read = read_then_wait
    results.record([row], path)


def test_two_jobs_recording_at_the_same_instant_both_land(table, tmp_path):
    path = tmp_path / "data.csv"
    shutil.copyfile(table[0] / "data.csv", path)
    row = results.read(path)[0]
    new = [dict(row, seed=seed) for seed in (7, 8)]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    jobs = [context.Process(target=_record_after_a_barrier, args=(path, one, barrier)) for one in new]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
        assert job.exitcode == 0
    assert sorted(row["seed"] for row in results.read(path)) == [7, 8, 1337, 1337, 1337, 1337]


def _killed_while_writing(path, row):
    import csv

    class DictWriter(csv.DictWriter):
        def writerows(self, rows):
            for index, one in enumerate(rows):
                if index == 2:
                    os.kill(os.getpid(), signal.SIGKILL)  # half of the new file written
                self.writerow(one)

    results.csv.DictWriter = DictWriter
    results.record([row], path)


def test_a_kill_during_the_write_leaves_the_data_as_it_was(table, tmp_path):
    path = tmp_path / "data.csv"
    shutil.copyfile(table[0] / "data.csv", path)
    before = path.read_bytes()
    job = multiprocessing.get_context("fork").Process(target=_killed_while_writing,
                                                      args=(path, dict(results.read(path)[0], seed=9)))
    job.start()
    job.join(timeout=60)
    assert job.exitcode == -signal.SIGKILL and path.read_bytes() == before
    assert results.record([dict(results.read(path)[0], seed=9)], path)  # and the next record works


@pytest.mark.parametrize("args, phrase", [
    (("vae-k3",), "error: unknown row 'vae-k3': choose from vae-k1, "),
    (("vae-k1", "--stages", "abc"), "argument --stages: invalid int value: 'abc'"),
    (("vae-k1", "--stages", "9"), "error: --stages must be from 1 to 8"),
    (("vae-k1", "--frobnicate", "1"), "unrecognized arguments: --frobnicate"),
    (("vae-k1", "--k", "5"), "error: name the rows or give one row's flags, not both"),
    (("vae-k1", "--seeds", "-3"), "error: --seed must be zero or positive"),
    (("vae-k1", "--slurm-partition", "gpu"), "error: --slurm-partition is for Slurm jobs: add --executor slurm"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, args, phrase):
    folder = table_folder(tmp_path)
    before = (folder / "data.csv").read_bytes()
    code = refused(folder, *args, stages=None if "--stages" in args else 2)
    error = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert phrase in error and len(error.strip().splitlines()) == 1
    assert not (folder / "runs").exists() or not any((folder / "runs").iterdir())
    assert (folder / "data.csv").read_bytes() == before


def damage_metrics(folder):
    (folder / "runs" / "vae-k1-batch150-eps1e-08" / "stage1" / "mnist_vae_metrics.json").write_text('{"iw_sa')
    return "stage1/mnist_vae_metrics.json is damaged"


def damage_checkpoint(folder):
    (folder / "runs" / "vae-k1-batch150-eps1e-08" / "stage0" / "mnist_vae.pt").write_bytes(b"PK\x03\x04 not a zip")
    return "stage0/mnist_vae.pt"


def damage_data(folder):
    with open(folder / "data.csv", "a") as stream:
        stream.write("this repo,one,elbo\n")
    return f"data.csv is damaged at line 2: 3 fields where the header names {len(results.COLUMNS)}"


def damaged_data(change, phrase):
    """A damage of the results data: `change` applied to a copy of the table's recorded rows."""
    def damage(folder):
        (folder / "data.csv").write_text(change((folder.parent / "recorded.csv").read_text()))
        return phrase
    damage.__name__ = phrase.split(":")[-1].strip().replace(" ", "_")
    return damage


DATA_DAMAGES = [
    damaged_data(lambda text: text[:-7], "data.csv is damaged at line 5: its last line is cut short"),
    damaged_data(lambda text: text.replace("\n", ",1\n", 2).replace(",1\n", "\n", 1),
                 f"data.csv is damaged at line 2: {len(results.COLUMNS) + 1} fields where"),
    damaged_data(lambda text: text.replace(",1337,", ",", 1),
                 f"data.csv is damaged at line 2: {len(results.COLUMNS) - 1} fields where"),
    damaged_data(lambda text: text + "\0" * 100, "data.csv is damaged at line 6: it holds a NUL byte")]


def another_row(folder):
    shutil.copytree(folder / "runs" / "iwae-k5-batch150-eps1e-08", folder / "runs" / "vae-k1-batch150-eps1e-08",
                    dirs_exist_ok=True)
    return "is a run of another row (objective iwae, k 5)"


def a_file(folder):
    shutil.rmtree(folder / "runs" / "vae-k1-batch150-eps1e-08")
    (folder / "runs" / "vae-k1-batch150-eps1e-08").write_text("")
    return "vae-k1-batch150-eps1e-08 is not a run folder: it is a file"


@pytest.mark.parametrize("damage", [damage_metrics, damage_checkpoint, damage_data, another_row, a_file,
                                    *DATA_DAMAGES], ids=lambda damage: damage.__name__)
def test_a_damaged_run_or_data_file_is_one_line_and_nothing_recorded_is_touched(table, tmp_path, capsys, damage):
    folder = tmp_path / "table"
    shutil.copytree(table[0], folder)
    shutil.copyfile(table[0] / "data.csv", tmp_path / "recorded.csv")
    (folder / "data.csv").write_text(",".join(results.COLUMNS) + "\n")  # every stage to do again
    phrase = damage(folder)
    before = (folder / "data.csv").read_bytes()
    code = refused(folder, *ROWS)
    error = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert phrase in error and len(error.strip().splitlines()) == 1
    assert (folder / "data.csv").read_bytes() == before


def test_a_results_file_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    folder = table_folder(tmp_path)
    if subprocess.run(["chattr", "+i", folder / "data.csv"], capture_output=True).returncode != 0:
        os.chmod(folder / "data.csv", 0o444)  # read-only: refused where permissions bind (not for root)
        if os.access(folder / "data.csv", os.W_OK):
            pytest.skip("no chattr +i here, and a read-only file is writable for this user (root)")
    try:
        code = refused(folder, *ROWS)
        error = capsys.readouterr().err + (code if isinstance(code, str) else "")
        assert error.startswith(f"error: cannot write the results data {folder / 'data.csv'} (")
        assert len(error.strip().splitlines()) == 1
    finally:
        subprocess.run(["chattr", "-i", folder / "data.csv"], capture_output=True)


@pytest.mark.skipif(slurm_is_running() is not None, reason=str(slurm_is_running()))
def test_a_partition_slurm_rejects_is_one_line_before_any_job(tmp_path):
    folder = table_folder(tmp_path)
    result = command(folder, "vae-k1", "--executor", "slurm", "--slurm-partition", "no-such-partition")
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: Slurm would not take these jobs: invalid partition specified: no-such-partition (asked with sbatch "
        "--test-only --wrap true --time 1440 --partition no-such-partition)"], result.stderr
    assert not (folder / "runs").exists() or not any((folder / "runs").iterdir())


@pytest.mark.skipif(slurm_is_running() is not None, reason=str(slurm_is_running()))
def test_a_slurm_controller_that_does_not_answer_is_one_line_before_any_job(tmp_path, capsys, monkeypatch):
    # The real Slurm's configuration with its controller at a port where none listens: as a stopped controller,
    # without stopping the one the other Slurm test uses.
    real = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    (tmp_path / "slurm.conf").write_text(real + "SlurmctldPort=9\nMessageTimeout=2\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    folder = table_folder(tmp_path)
    code = refused(folder, "vae-k1", "--executor", "slurm")
    error = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert error.startswith("error: Slurm would not take these jobs: allocation failure: Unable to contact slurm "
                            "controller") and len(error.strip().splitlines()) == 1, error


@pytest.mark.skipif(slurm_is_running() is not None, reason=str(slurm_is_running()))
def test_the_slurm_path_records_a_row_through_a_real_slurm(table, started_early):
    folder, process = started_early["slurm"]
    result = finished(process)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = [row for row in figures(table[0] / "data.csv") if row[2] == 5 and row[9] == 0]  # k = 5, stage 0
    assert figures(folder / "data.csv") == expected and result.stdout.count("Slurm job ") == 1
