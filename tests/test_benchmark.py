"""The benchmark times like with like: its plain loop trains the network train.py builds, its denormal case has
denormals to flush, and it runs end to end on tiny data (no timing is asserted)."""
import torch

from benchmarks import speed
from conftest import ROOT, run_python


def test_the_plain_loop_trains_a_network_of_the_same_shape_as_train_py_s():
    images = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    _, model = speed.project(images, 4)
    shapes = []
    original = torch.optim.Adam

    def recording(parameters, **kwargs):
        parameters = list(parameters)
        shapes.extend(sorted(tuple(p.shape) for p in parameters))
        return original(parameters, **kwargs)

    torch.optim.Adam = recording
    try:
        speed.plain(images, 4)
    finally:
        torch.optim.Adam = original
    # the plain encoder's last layer gives mu and logvar at once: the project's two heads, stacked
    heads = {(2 * model.latent_dims, model.to_latent.in_features), (2 * model.latent_dims,)}
    project = [tuple(p.shape) for name, p in model.named_parameters() if not name.startswith(("to_latent", "to_logvar"))]
    assert sorted(shape for shape in shapes if shape not in heads) == sorted(project)


def test_the_denormal_case_has_denormal_decoder_gradients_to_flush():
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 10:18] = 255
    _, model = speed.project(images, 4, objective="iwae", k=5)
    speed.blank_pixels_certain(model, images)
    grads = []
    model.decoder[-1].register_forward_hook(lambda layer, inputs, output: output.register_hook(grads.append) and None)
    try:
        torch.set_flush_denormal(False)
        model(images.float() / 255)[0].backward()
        grad = grads[0]  # (B, k, 784)
        denormal = (grad != 0) & (grad.abs() < torch.finfo(grad.dtype).tiny)  # read before flushing reads them as 0
    finally:
        torch.set_flush_denormal(True)  # as every script runs on the CPU
    assert denormal[..., :100].all() and not denormal[..., 28 * 12 + 12].any()  # a blank corner; an inked pixel


def test_the_benchmark_runs_every_comparison_end_to_end(data_root):
    result = run_python("-m", "benchmarks.speed", "--data-root", data_root, "--images", "40", "--rounds", "1",
                        cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line.split(":")[0] for line in result.stdout.splitlines()[1:]]
    assert lines == ["loop", "bernoulli", "loop", "bernoulli", "denormals (IWAE, k = 50)", "bf16 (IWAE, k = 50)"]
    assert "one thread" in result.stdout.splitlines()[0]
