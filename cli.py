"""Where a script meets its user: errors the user can fix become one line and a non-zero exit, and --device
is turned into a torch device, or refused, before any work starts."""
import sys


class UserError(Exception):
    """Something the user can fix; run() prints it as one line and exits non-zero."""


def run(main):
    """Run a script's main(): what the user can fix is one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted: nothing was written for the unfinished work; earlier files are intact")


def resolve_device(name):
    import torch  # here, not at the top: config.py and --help stay quick to import

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return device
