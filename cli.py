"""Where a script meets its user: fixable errors, interruptions and closed pipes are one line on stderr and a
non-zero exit; --device is checked before any work. Imported first: a Ctrl-C while torch loads is one line too."""
import contextlib
import ctypes
import os
import signal
import sys

STOP_WITH_PARENT = "STOP_WITH_PARENT"  # a parent's pid: the table's command and jobs set it for what they start
PR_SET_PDEATHSIG = 1  # Linux's prctl option: the signal a process gets when its parent ends
INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C (128 + SIGINT); also after SIGTERM or a closed pipe
DEVICE_TYPES = ("cpu", "cuda", "mps")


class UserError(Exception):
    """Something the user can fix; run() prints it as one line and exits non-zero."""


class Stopped(Exception):
    """The run was interrupted or lost its output; the message says what is on disk. run() exits with INTERRUPTED."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _one_line_on_interrupt(kind, value, traceback):
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted before any work began; nothing was written", file=sys.stderr, flush=True)
        os._exit(INTERRUPTED)  # the interpreter is ending anyway; this way no traceback follows
    sys.__excepthook__(kind, value, traceback)


def catch_interrupts():
    """SIGTERM stops a run as Ctrl-C does, and one outside run() (while torch imports) is one line. A process whose
    parent put its pid in STOP_WITH_PARENT gets SIGTERM when the parent ends, however it ends (Linux)."""
    signal.signal(signal.SIGTERM, _interrupt)
    sys.excepthook = _one_line_on_interrupt
    parent = os.environ.get(STOP_WITH_PARENT)
    prctl = getattr(ctypes.CDLL(None), "prctl", None) if parent else None
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if str(os.getppid()) != parent:  # it ended before this process could hear of it
            os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM back while the block runs; they arrive right after. Python runs handlers in the main
    thread whichever thread a signal reached, so swapping handlers holds them for torch's threads too."""
    held = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held:
            os.kill(os.getpid(), signum)  # delivered again, now to the handler the script had


def run(main):
    """Run a script's main(): what the user can fix is one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
    except Stopped as stop:
        _quiet_stdout()
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except KeyboardInterrupt:
        print("interrupted: files written so far are whole; the unfinished work wrote nothing", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        _quiet_stdout()
        print("stopped: standard output was closed (e.g. by `| head`); files written so far are whole", file=sys.stderr)
        sys.exit(INTERRUPTED)


def _quiet_stdout():
    """Point stdout at /dev/null, so that flushing a closed pipe at exit raises nothing more."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def count_of(count, noun):
    """count_of(1, "epoch") is "1 epoch", count_of(2, "epoch") "2 epochs"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def resolve_device(name, bf16=False):
    """The torch device --device names, checked; on the CPU, denormals flushed and --bf16 without bfloat16 matrix
    instructions warned of."""
    import torch  # here, not at the top: config.py and --help stay quick to import

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                        f"numbered from 0; use --device cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    if device.type == "cpu":
        from speed import flush_denormals

        flush_denormals()
        if bf16 and bf16_matrix_units() == []:
            print("--bf16: this CPU lists no bfloat16 matrix instructions (amx_bf16, avx512_bf16, bf16), so training "
                  "runs slower than in float32 (1.8-3x where measured: docs/performance.md)", file=sys.stderr)
    return device


def bf16_matrix_units(cpuinfo="/proc/cpuinfo"):
    """The CPU's bfloat16 matrix instructions (x86: amx_bf16, avx512_bf16; Arm: bf16), None where unknown."""
    try:
        with open(cpuinfo) as lines:
            flags = next((line.split() for line in lines if line.startswith(("flags", "Features"))), [])
    except OSError:
        return None
    return [flag for flag in ("amx_bf16", "avx512_bf16", "bf16") if flag in flags]


catch_interrupts()
