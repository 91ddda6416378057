"""The benchmarks' parts: their floors are the model's own matrix multiplies and one Adam pass, their ratios are
paired round by round, and they run end to end on tiny data (no timing is asserted)."""
import pytest
import torch
from torch import nn

from benchmarks import denormals, handwritten, timing, works
from conftest import ROOT, run_python
from metrics import importance_weighted_nll
from literature import KSampleVAE


def multiplies(monkeypatch, work):
    """The (left, right) shapes of every torch.mm that `work` runs."""
    shapes, mm = [], torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b, **kwargs: shapes.append((tuple(a.shape), tuple(b.shape))) or mm(a, b, **kwargs))
    work()
    return sorted(shapes)


@pytest.mark.parametrize("extra_layer", [False, True])
def test_the_floor_multiplies_what_the_models_layers_multiply(monkeypatch, extra_layer):
    model = KSampleVAE(latent_dims=3, hidden_dims=16)
    if extra_layer:  # whatever model.py defines, the floor follows
        model.decoder.insert(2, nn.Linear(16, 16))
    floor = works.step_floor(model, count=10, batch_size=4, learning_rate=1e-3)
    layers = [(16, 784), (3, 16), (16, 3)] + [(16, 16)] * extra_layer + [(784, 16), (3, 16)]  # (out, in) per layer
    expected = []
    for rows in (4, 4, 2):  # batches of one epoch of 10 images
        for index, (out, inp) in enumerate(layers):
            expected += [((rows, inp), (inp, out)), ((out, rows), (rows, inp))]  # forward; the weight's gradient
            if index > 0:  # the input's gradient, but for the layer that reads the images
                expected.append(((rows, out), (out, inp)))
    assert multiplies(monkeypatch, floor) == sorted(expected)


def test_the_floor_multiplies_k_rows_an_image_in_the_decoder_of_a_k_sample_objective(monkeypatch):
    model = KSampleVAE(latent_dims=3, hidden_dims=16, objective="iwae", k=3)
    floor = works.step_floor(model, count=4, batch_size=4, learning_rate=1e-3)
    layers = [((16, 784), 4), ((3, 16), 4), ((16, 3), 12), ((784, 16), 12), ((3, 16), 4)]  # (out, in), rows
    expected = []
    for index, ((out, inp), rows) in enumerate(layers):
        expected += [((rows, inp), (inp, out)), ((out, rows), (rows, inp))]
        if index > 0:
            expected.append(((rows, out), (out, inp)))
    assert multiplies(monkeypatch, floor) == sorted(expected)


def test_the_floors_adam_pass_is_adams_update_of_every_parameter():
    torch.manual_seed(0)
    model = KSampleVAE(latent_dims=3, hidden_dims=16)
    weights, grads, step = works.flat_adam(model, learning_rate=0.01)
    parameters = list(model.parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    grads.copy_(torch.cat([parameter.grad.flatten() for parameter in parameters]))
    adam = torch.optim.Adam(parameters, lr=0.01)
    for _ in range(3):
        step()
        adam.step()
    assert torch.allclose(weights, torch.cat([parameter.detach().flatten() for parameter in parameters]), atol=1e-6)
    assert weights.numel() == sum(parameter.numel() for parameter in parameters)


def test_the_floor_writes_its_gradients_where_its_adam_pass_reads_them():
    model = KSampleVAE(latent_dims=3, hidden_dims=16)
    _, flat_grads, _ = works.flat_adam(model, 1e-3)
    views = works.parameter_views(model, flat_grads)
    for view, layer in zip(views, works.linear_layers(model)):
        assert view.shape == layer.weight.shape
        view.fill_(1.0)
    assert flat_grads.sum() == sum(layer.weight.numel() for layer in works.linear_layers(model))  # views, not copies


@pytest.mark.parametrize("activation, likelihood, hidden_layers", [("tanh", "bernoulli", 2), ("relu", "gaussian", 1)])
def test_the_handwritten_step_computes_autograds_loss_and_gradients_and_takes_adams_step(activation, likelihood,
                                                                                         hidden_layers):
    torch.manual_seed(0)
    model = KSampleVAE(latent_dims=3, hidden_dims=16, hidden_layers=hidden_layers, activation=activation,
                                   likelihood=likelihood, beta=0.7)
    step, weights, grads = handwritten.handwritten_step(model, activation, learning_rate=0.01)
    x = (torch.rand(5, 784) < 0.3).float()
    torch.manual_seed(1)  # the same noise for both: the model draws (5, 1, 3) normals, the step (5, 3)
    loss = step(x)
    torch.manual_seed(1)
    expected, _, _ = model(x.view(5, 1, 28, 28))
    expected.backward()
    assert torch.allclose(loss, expected, rtol=1e-6)
    for parameter in model.parameters():
        gradient = grads[parameter]
        assert torch.allclose(gradient, parameter.grad, rtol=1e-4, atol=1e-8)
        # Adam's first step is lr * g / (|g| + eps): the flat weights moved by it, from the model's own weights.
        assert torch.allclose(weights[parameter], parameter - 0.01 * gradient / (gradient.abs() + 1e-8), atol=1e-6)


def test_the_handwritten_bound_is_the_projects_bound():
    torch.manual_seed(0)
    model = KSampleVAE(latent_dims=3, hidden_dims=16, hidden_layers=2, activation="tanh",
                                   likelihood="bernoulli")
    images = (torch.rand(3, 28, 28) < 0.3).to(torch.uint8) * 255
    torch.manual_seed(1)
    expected = importance_weighted_nll(model, images, samples=150, samples_per_chunk=64)  # 3 chunks an image
    torch.manual_seed(1)
    bound = handwritten.handwritten_bound(model, "tanh", images, samples=150, samples_per_chunk=64)()
    assert bound.shape == (3,) and torch.allclose(bound, expected, rtol=1e-5)


def test_the_decoder_floor_multiplies_what_the_decoder_multiplies(monkeypatch):
    model = KSampleVAE(latent_dims=3, hidden_dims=16, hidden_layers=2)
    floor = works.decoder_floor(model, samples=10, rows_per_chunk=4)
    expected = [((rows, inp), (inp, out)) for rows in (4, 4, 2) for inp, out in ((3, 16), (16, 16), (16, 784))]
    assert multiplies(monkeypatch, floor) == sorted(expected)


def test_the_ratio_is_taken_round_by_round():
    rounds = [[2.0, 1.0, 9.0], [3.0, 2.0, 9.0], [1.3, 1.0, 9.0]]  # (a) 2.0x, 1.5x, 1.3x the (c) beside it
    assert timing.paired_ratio(rounds) == (1.5, 1.3, 2.0)
    assert timing.paired_ratio(rounds, first=2, second=0) == (4.5, 3.0, 9.0 / 1.3)


def test_works_take_turns_and_each_keeps_its_best_time(monkeypatch):
    order, clock = [], iter(range(100))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    works_timed = [lambda: order.append("a"), lambda: [order.append("c"), next(clock)]]  # c takes one more tick
    assert timing.timed_rounds(torch.device("cpu"), works_timed, repeats=2) == [[1, 2], [1, 2]]
    assert order == ["a", "c", "a", "c"]
    assert timing.best_times(torch.device("cpu"), works_timed, repeats=3) == [1, 2]


def test_the_matrix_units_line_says_when_onednn_is_held_below_the_processor(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert "ONEDNN_MAX_CPU_ISA" not in timing.bf16_units(cpu)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert timing.bf16_units(cpu).endswith("oneDNN held to ONEDNN_MAX_CPU_ISA=AVX2")


def test_the_epoch_benchmark_runs_end_to_end(data_root):
    result = run_python("-m", "benchmarks.epoch", "--device", "cpu", "--data-root", data_root, cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "a/c = " in result.stdout


def test_the_literature_benchmark_runs_every_row_and_the_bound(data_root):
    result = run_python("-m", "benchmarks.literature", "--device", "cpu", "--data-root", data_root,
                        "--iw-samples", "10", cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["default"], ["burda2015"])]
    assert [" ".join(row[:4]) for row in rows] == ["default 512 elbo k=1", "burda2015 100 elbo k=1",
                                                   "burda2015 20 elbo k=1", "burda2015 100 iwae k=5",
                                                   "burda2015 100 iwae k=50"]
    handwritten_column = [row[8] for row in rows]  # the hand-written step: timed for the ELBO rows, not for the IWAE's
    assert all(float(cell) > 0 for cell in handwritten_column[:3]) and handwritten_column[3:] == ["-", "-"]
    assert "k = 10, 100 test images" in result.stdout and "\nthe bound written out by hand: " in result.stdout
    help_text = run_python("-m", "benchmarks.literature", "--help", cwd=ROOT).stdout
    assert "(default: 5000)" in help_text  # the literature's k, not test.py's


def test_the_save_benchmark_times_both_networks_with_and_without_the_syncs(tmp_path):
    result = run_python("-m", "benchmarks.save", "--ckpt-dir", tmp_path, cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = [line.split(":")[0].strip() for line in result.stdout.splitlines() if "the syncs cost" in line]
    assert rows == ["default", "burda2015"]
    assert (tmp_path / "mnist_vae.pt").stat().st_size > 4_000_000  # a real checkpoint, Burda's last


def test_the_denormal_share_counts_the_decoders_denormal_gradients():
    model = KSampleVAE(latent_dims=2, hidden_dims=8, likelihood="bernoulli")
    with torch.no_grad():  # every logit -88: sigmoid(-88) = 6e-39, and its gradient / (784 * 4) is denormal too
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.fill_(-88.0)
    images = torch.zeros(4, 1, 28, 28)
    try:
        torch.set_flush_denormal(False)
        assert denormals.denormal_share(model, images) == 1.0
        torch.set_flush_denormal(True)
        assert denormals.denormal_share(model, images) == 0.0  # flushed: the sigmoid's output is already zero
    finally:
        torch.set_flush_denormal(True)  # as every script runs on the CPU


def test_the_denormal_benchmark_times_a_checkpoints_steps_both_ways(workspace):
    result = run_python("-m", "benchmarks.denormals", "--data-root", workspace / "data", "--ckpt-dir",
                        workspace / "ckpts", "--batch-size", "16", cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "denormal decoder output gradients: " in result.stdout
    assert "denormals kept " in result.stdout and "kept/flushed " in result.stdout
