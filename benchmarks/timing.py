"""How the benchmarks time their works: in rounds that take turns, the best of each, and ratios paired by round."""
import os
import statistics
import time

import torch

import cli


def timed_rounds(device, works, repeats):
    """Seconds each of `works` takes, in `repeats` rounds: one row per round, one figure per work.

    The works take turns within a round, so a slow spell of a shared machine hits neighbours alike.
    """
    rounds = []
    for _ in range(repeats):
        seconds = []
        for work in works:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
        rounds.append(seconds)
    return rounds


def best_of(rounds):
    """The fewest seconds of each work over timed_rounds' rounds: the figure least disturbed by other processes,
    which only ever add time."""
    return [min(column) for column in zip(*rounds)]


def best_times(device, works, repeats=1):
    """best_of `repeats` rounds of `works`."""
    return best_of(timed_rounds(device, works, repeats))


def paired_ratio(rounds, first=0, second=1):
    """(median, lowest, highest) over rounds of work `first`'s seconds divided by work `second`'s.

    On a shared machine the floor itself moves by up to 20% between spells; (a) against the (c) run right beside
    it moves far less, so the ratio is taken round by round.
    """
    ratios = [seconds[first] / seconds[second] for seconds in rounds]
    return statistics.median(ratios), min(ratios), max(ratios)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {cli.count_of(torch.get_num_threads(), 'thread')}"


def bf16_units(device):
    """Whether the processor multiplies bfloat16 matrices in hardware: the CPU's flags (cli.bf16_matrix_units)
    and any cap set on oneDNN's instructions, or the GPU's name."""
    if device.type != "cpu":
        return device_name(device)
    found = cli.bf16_matrix_units()
    units = ", ".join(found) if found else "unknown" if found is None else "none (no amx_bf16, avx512_bf16 or bf16)"
    # oneDNN, which runs the bfloat16 multiplies, can be held below the processor's instructions: a processor
    # without the units, measured on one that has them.
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{units}; oneDNN held to ONEDNN_MAX_CPU_ISA={capped}" if capped else units
