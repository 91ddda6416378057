"""The benchmark's parts: its floor is the model's own matrix multiplies, its ratio is paired round by round,
and it runs end to end on tiny data (no timing is asserted)."""
import pytest
import torch
from torch import nn

from benchmarks import epoch
from conftest import ROOT, run_python
from model import VariationalAutoEncoder


def multiplies(monkeypatch, work):
    """The (left, right) shapes of every torch.mm that `work` runs."""
    shapes, mm = [], torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b, **kwargs: shapes.append((tuple(a.shape), tuple(b.shape))) or mm(a, b, **kwargs))
    work()
    return sorted(shapes)


@pytest.mark.parametrize("extra_layer", [False, True])
def test_the_floor_multiplies_what_the_models_layers_multiply(monkeypatch, extra_layer):
    model = VariationalAutoEncoder(latent_dims=3, hidden_dims=16)
    if extra_layer:  # whatever model.py defines, the floor follows
        model.decoder.insert(2, nn.Linear(16, 16))
    floor = epoch.gemm_floor(model, count=10, batch_size=4)
    layers = [(16, 784), (3, 16), (16, 3)] + [(16, 16)] * extra_layer + [(784, 16), (3, 16)]  # (out, in) per layer
    expected = []
    for rows in (4, 4, 2):  # batches of one epoch of 10 images
        for index, (out, inp) in enumerate(layers):
            expected += [((rows, inp), (inp, out)), ((out, rows), (rows, inp))]  # forward; the weight's gradient
            if index > 0:  # the input's gradient, but for the layer that reads the images
                expected.append(((rows, out), (out, inp)))
    assert multiplies(monkeypatch, floor) == sorted(expected)


def test_the_ratio_is_taken_round_by_round():
    rounds = [[2.0, 1.0, 9.0], [3.0, 2.0, 9.0], [1.3, 1.0, 9.0]]  # (a) 2.0x, 1.5x, 1.3x the (c) beside it
    assert epoch.paired_ratio(rounds) == (1.5, 1.3, 2.0)


def test_works_take_turns_and_each_keeps_its_best_time(monkeypatch):
    order, clock = [], iter(range(100))
    monkeypatch.setattr(epoch.time, "perf_counter", lambda: next(clock))
    works = [lambda: order.append("a"), lambda: [order.append("c"), next(clock)]]  # c takes one more tick
    assert epoch.timed_rounds(torch.device("cpu"), works, repeats=2) == [[1, 2], [1, 2]]
    assert order == ["a", "c", "a", "c"]
    assert epoch.best_times(torch.device("cpu"), works, repeats=3) == [1, 2]


def test_the_benchmark_runs_end_to_end(data_root):
    result = run_python("-m", "benchmarks.epoch", "--device", "cpu", "--data-root", data_root, cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "a/c = " in result.stdout
