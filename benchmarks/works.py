"""What the benchmarks time: this project's own loop, and the floors it is held against, the arithmetic any
implementation of the same work must do, built from the model's own layers (so they follow any change to model.py).

  project_loop:  (a) a training epoch and a test-set evaluation, as train.py and test.py run them;
  step_floor:    (c) a training epoch's forward and backward matrix multiplies, and one Adam pass a step;
  decoder_floor: the importance-weighted bound's decoder multiplies, sample by sample.
"""
from types import SimpleNamespace

import torch
from torch import nn
from tqdm import tqdm

from checkpoints import build, model_args
from loop import EVAL_BATCH_SIZE, evaluate, make_optimizer, train_epoch

ADAM = {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0, "eps": 1e-8, "amsgrad": False, "maximize": False}


def replaced(cfg, **values):
    """A copy of cfg with some values replaced."""
    return SimpleNamespace(**{**vars(cfg), **values})


def vae(cfg, device):
    torch.manual_seed(cfg.seed)
    return build("vae", model_args(cfg)).to(device)


def project_loop(cfg, dataset, device, batch_size, train_count=None, bf16=False):
    """(a): (train epoch, evaluation) as train.py and test.py run them (training under --bf16 or not), warmed up and
    ready to time."""
    model = vae(cfg, device)
    optimizer = make_optimizer(model, cfg.learning_rate, device)
    quiet = tqdm(disable=True)
    train_images = dataset.train_images[:train_count]
    train_epoch(model, optimizer, train_images[: 20 * batch_size], batch_size, quiet, bf16, dataset.resample)
    evaluate(model, dataset.test_images[:EVAL_BATCH_SIZE])  # warm-up
    return (lambda: train_epoch(model, optimizer, train_images, batch_size, quiet, bf16, dataset.resample).item(),
            lambda: evaluate(model, dataset.test_images))


def linear_layers(module):
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]


def flat_adam(model, learning_rate):
    """(weights, grads, step): every parameter of `model` copied into one flat buffer, with a flat gradient buffer,
    and step() running Adam's update over all of them as one fused pass (torch's fused kernel, one tensor): weights,
    gradients and both moments read, weights and moments written, the least any Adam step can move."""
    parameters = list(model.parameters())
    weights = torch.cat([parameter.detach().flatten() for parameter in parameters])
    grads = torch.zeros_like(weights)
    moments = (torch.zeros_like(weights), torch.zeros_like(weights))
    steps = torch.zeros((), device=weights.device)

    def step():
        steps.add_(1)  # the kernel reads the step count; torch.optim.Adam advances it first, as here
        torch._fused_adam_([weights], [grads], [moments[0]], [moments[1]], [], [steps], lr=learning_rate, **ADAM)

    return weights, grads, step


def flat_views(model, buffer):
    """{parameter: its view in `buffer`} for every parameter of `model`, laid out as flat_adam lays them out."""
    views, offset = {}, 0
    for parameter in model.parameters():
        views[parameter] = buffer[offset : offset + parameter.numel()].view_as(parameter)
        offset += parameter.numel()
    return views


def parameter_views(model, buffer):
    """Each nn.Linear weight of `model` as its view into `buffer` (flat_views)."""
    views = flat_views(model, buffer)
    return [views[layer.weight] for layer in linear_layers(model)]


def step_floor(model, count, batch_size, learning_rate, adam=True):
    """(c): one epoch of `count` images in batches through `model`'s own nn.Linear layers: the forward multiplies,
    the backward ones (the weights' gradients, and the inputs' but for the first layer, whose input is the images),
    each into preallocated outputs, and (with adam) one flat_adam pass per step: the work any implementation of
    this training step has to do. The decoder's layers see model.k rows an image, one per sample of z."""
    flat_weights, flat_grads, adam_step = flat_adam(model, learning_rate)
    weights, weight_grads = parameter_views(model, flat_weights), parameter_views(model, flat_grads)  # (out, in)
    decoder = {id(layer.weight) for layer in linear_layers(model.decoder)}
    samples = [model.k if id(layer.weight) in decoder else 1 for layer in linear_layers(model)]  # rows per image
    device = flat_weights.device
    shapes = [(batch_size * k, *weight.shape) for weight, k in zip(weights, samples)]  # (rows, out, in) per layer
    inputs = [torch.randn(rows, inputs, device=device) for rows, _, inputs in shapes]
    outputs = [torch.randn(rows, outputs, device=device) for rows, outputs, _ in shapes]
    output_grads = [torch.randn(rows, outputs, device=device) for rows, outputs, _ in shapes]
    input_grads = [torch.empty(rows, inputs, device=device) for rows, _, inputs in shapes]
    sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]

    def one_batch(images):
        for index, weight in enumerate(weights):
            rows = images * samples[index]
            x, grad_y = inputs[index][:rows], output_grads[index][:rows]
            torch.mm(x, weight.T, out=outputs[index][:rows])  # forward
            torch.mm(grad_y.T, x, out=weight_grads[index])  # backward: the weight's gradient
            if index > 0:
                torch.mm(grad_y, weight, out=input_grads[index][:rows])
        if adam:
            adam_step()

    for rows in sizes[:10]:  # warm-up
        one_batch(rows)
    return lambda: [one_batch(rows) for rows in sizes]


def decoder_floor(model, samples, rows_per_chunk):
    """The decoder's forward multiplies for `samples` latent codes, `rows_per_chunk` at a time (as the bound decodes
    them), into preallocated outputs: the arithmetic of an importance-weighted bound with that many samples."""
    weights = [layer.weight.detach() for layer in linear_layers(model.decoder)]  # (out, in) each
    device = weights[0].device
    codes = torch.randn(rows_per_chunk, weights[0].shape[1], device=device)
    outputs = [torch.empty(rows_per_chunk, weight.shape[0], device=device) for weight in weights]
    sizes = [min(rows_per_chunk, samples - start) for start in range(0, samples, rows_per_chunk)]

    def one_chunk(rows):
        layer_input = codes[:rows]
        for weight, output in zip(weights, outputs):
            layer_input = torch.mm(layer_input, weight.T, out=output[:rows])

    for rows in sizes[:3]:  # warm-up
        one_chunk(rows)
    return lambda: [one_chunk(rows) for rows in sizes]
