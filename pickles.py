"""Reading a checkpoint as data only: a file that would run code when torch unpickles it is named and refused
before anything in it is unpickled.

torch.load(weights_only=True) already refuses such a file, but says so in torch's words, which change between
versions; here what a file holds is judged from its bytes. A pickle calls code through the globals it names (its
GLOBAL and STACK_GLOBAL opcodes): tensors and plain data need none outside torch.
"""
import pickletools
import zipfile

import torch

from cli import UserError

PICKLES_IN_OLDER_FORMAT = 4  # torch's non-zip format: a magic number, the protocol, system information, the object
SAFE_GLOBALS = ("collections.OrderedDict",)  # besides torch's own: what a state_dict is made of


def read_data(file):
    """The object torch.save wrote to `file`, read as data only; a one-line UserError if it would call code outside
    torch when unpickled, or is not a file torch.save wrote."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:  # not a zip file torch.save wrote: torch's older format, a bare pickle, or no checkpoint at all
        unsafe = unsafe_globals_in_pickles(file)
    if unsafe:
        raise UserError(f"{file} was refused: it holds Python objects other than tensors and plain data "
                        f"({', '.join(unsafe[:3])}), which could run code when loaded; only load checkpoints "
                        "written by train.py")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception:
        raise UserError(f"{file} is not a usable checkpoint of this project (damaged, or not a checkpoint); "
                        "retrain with train.py") from None


def unsafe_globals_in_pickles(file):
    """The globals outside torch that the pickles at the start of a non-zip `file` name, read without unpickling
    them. torch's older format is pickles one after another and a bare pickle is one; torch.load with
    weights_only=False unpickles the first in full, so every whole pickle counts. Reading stops at the first bytes
    that are not a whole pickle (the older format's raw tensor data, or damage)."""
    if zipfile.is_zipfile(file):
        return []
    names = []
    with open(file, "rb") as stream:
        for _ in range(PICKLES_IN_OLDER_FORMAT):
            try:
                names += _globals_named(stream)
            except Exception:  # not a whole pickle
                break
    return [name for name in dict.fromkeys(names) if not name.startswith("torch.") and name not in SAFE_GLOBALS]


def _globals_named(stream):
    """The globals one pickle read from `stream` names, up to its STOP; raises if the pickle is not whole."""
    names, strings = [], []
    for opcode, argument, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            names.append(argument.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":  # protocol 4 on: the module and name are the two strings pushed before it
            names.append(".".join(strings[-2:]))
        elif isinstance(argument, str):
            strings.append(argument)
    return names
