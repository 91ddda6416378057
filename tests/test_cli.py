import os
import platform
import signal

import pytest
import torch

import cli
from cli import UserError
from conftest import ROOT, run_python


def exit_code(main):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    return exit_info.value.code


def test_run_turns_user_errors_into_one_line_and_a_nonzero_exit():
    def main():
        raise UserError("something the user can fix")

    assert exit_code(main) == "error: something the user can fix"


@pytest.mark.parametrize("raised, code, phrase", [
    (cli.Stopped("VAE in epoch 3; ckpts/mnist_vae.pt holds epochs 1-2"), 130, "stopped: VAE in epoch 3; ckpts/mnist_vae"),
    (KeyboardInterrupt(), 130, "interrupted: files written so far are whole"),
    (BrokenPipeError(), 130, "stopped: standard output was closed"),
])
def test_run_ends_interruptions_in_one_line(capsys, monkeypatch, raised, code, phrase):
    monkeypatch.setattr(cli, "_quiet_stdout", lambda: None)  # pytest's stdout is not ours to close

    def main():
        raise raised

    assert exit_code(main) == code
    err = capsys.readouterr().err
    assert err.startswith(phrase) and err.count("\n") == 1


def test_signals_held_arrive_after_the_block():
    torch.ones(1000, 1000) @ torch.ones(1000, 1000)  # torch's worker threads exist, and may take the signal
    events = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: events.append("signal"))
    try:
        with cli.signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            torch.ones(1000, 1000) @ torch.ones(1000, 1000)
            events.append("block done")
        events.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert events == ["block done", "signal", "after"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interruption_while_torch_imports_is_one_line(signum):
    # The signal is sent from inside, at the point a script is at when its imports begin: deterministic, no sleep.
    code = f"import cli; cli.catch_interrupts(); import os; os.kill(os.getpid(), {int(signum)}); import torch"
    result = run_python("-c", code, cwd=ROOT)
    assert result.returncode == cli.INTERRUPTED
    assert result.stderr == "interrupted before any work began; nothing was written\n"


@pytest.mark.parametrize("name, phrase", [
    ("tpu", "unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"),
    ("meta", "unknown device 'meta'"),
    ("xpu", "unknown device 'xpu'"),
    ("cuda", "--device cuda: CUDA is not available on this machine; use --device cpu"),
])
def test_a_device_this_machine_lacks_is_refused_before_any_work(monkeypatch, name, phrase):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=phrase):
        cli.resolve_device(name)


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="this machine has 1 CUDA device"):
        cli.resolve_device("cuda:1")
    assert cli.resolve_device("cuda:0") == torch.device("cuda:0")


def test_auto_is_the_cpu_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert cli.resolve_device("auto") == torch.device("cpu") == cli.resolve_device("cpu")


DENORMAL_ARITHMETIC = """
import sys
import cli
if sys.argv[1] == "cpu":
    cli.resolve_device("cpu")
import torch
torch.set_num_threads(2)
tiny = torch.full((1 << 20,), 1e-39)  # a denormal float32, enough of them for both threads to share the work
print(int((tiny * 1.0).count_nonzero()))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="flushing denormals is an x86 setting here")
def test_the_cpu_device_flushes_denormals_to_zero():
    flushed, kept = (run_python("-c", DENORMAL_ARITHMETIC, device, cwd=ROOT) for device in ("cpu", "none"))
    assert int(kept.stdout) == 1 << 20  # without it, denormals are computed with
    assert int(flushed.stdout) == 0, flushed.stderr


@pytest.mark.parametrize("listing, found", [
    ("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n", ["amx_bf16", "avx512_bf16"]),
    ("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n", []),
    ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", ["bf16"]),
])
def test_the_bf16_matrix_units_are_read_from_the_cpus_flags(tmp_path, listing, found):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(listing)
    assert cli.bf16_matrix_units(cpuinfo) == found
    assert cli.bf16_matrix_units(tmp_path / "absent") is None
