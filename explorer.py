"""The latent-space explorer: one self-contained HTML page (explorer.html filled in) that runs a model's decoder in
the browser, over the test set's codes drawn as the latent-space figure draws them. visualize.py writes it."""
import base64
import json
from pathlib import Path

import torch
from torch import nn

from cli import UserError, count_of
from model import ACTIVATIONS
from plots import latent_plane

TEMPLATE = Path(__file__).with_name("explorer.html")
MAX_DECODER_WEIGHTS = 5_000_000  # 20 MB of float32 weights, 27 MB of page: beyond that a page is not the place
ACTIVATION_NAMES = {module: name for name, module in ACTIVATIONS.items()}  # nn.Tanh -> "tanh", as --activation
# The plane the page draws, by the code's size (1, 2, more), in the caption's words.
PLANES = {1: "z[0] runs across, the class upward.", 2: "z[0] runs across, z[1] upward.",
          3: "The plane is that of the codes' first two principal components, as in the latent-space figure; the "
             "other directions stay at the codes' mean."}
JITTER_SEED = 0  # a 1-D code is drawn against its class, spread a little, as the latent-space figure does


def decoder_weights(model):
    return sum(parameter.numel() for layer in model.decoding_layers() for parameter in layer.parameters())


def check(model, name):
    """Refuse, before any work, a decoder too large to run in a page."""
    weights = decoder_weights(model)
    if weights > MAX_DECODER_WEIGHTS:
        raise UserError(f"the {name.upper()}'s decoder has {weights:,} weights, more than the explorer page runs "
                        f"({MAX_DECODER_WEIGHTS:,}); draw the other model with --model")


def expected_size(model, test_images=10_000):
    """About how many bytes page() writes: base64 float32 weights and plane coordinates, a byte per label."""
    return 4 * (4 * decoder_weights(model) + 9 * test_images) // 3 + TEMPLATE.stat().st_size


def _base64(tensor):
    return base64.b64encode(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).decode()


def page(model, codes, labels, classes, trained, epochs, command):
    """The explorer's HTML: `codes` (N, code_dims) and `labels` (N,) of the test set in the plane of the
    latent-space figure (plots.latent_plane) and the decoder's layers; the caption names what was `trained` ("VAE on
    mnist"), for how many `epochs`, and the `command` that wrote the page."""
    origin, basis, axes = latent_plane(codes)
    coords = (codes - origin) @ basis  # (N, axes)
    if coords.shape[1] == 1:
        jitter = torch.rand(len(labels), generator=torch.Generator().manual_seed(JITTER_SEED))
        coords = torch.cat([coords.cpu(), (labels.cpu() + 0.8 * (jitter - 0.5))[:, None]], 1)
        axes = axes + ["class"]
    layers = []
    for layer in model.decoding_layers():
        if isinstance(layer, nn.Linear):
            layers.append({"kind": "linear", "inputs": layer.in_features, "outputs": layer.out_features,
                           "weight": _base64(layer.weight), "bias": _base64(layer.bias)})
        else:
            layers.append({"kind": ACTIVATION_NAMES[type(layer)]})
    data = {"layers": layers, "origin": _base64(origin), "basis": _base64(basis), "coords": _base64(coords),
            "labels": base64.b64encode(labels.to("cpu", torch.uint8).numpy().tobytes()).decode(),
            "axes": axes, "basis_columns": basis.shape[1], "latent_dims": codes.shape[1], "classes": list(classes),
            "title": f"{trained}: the latent space, decoded as you point",
            "caption": f"{trained}, {count_of(epochs, 'epoch')} of training, codes of {codes.shape[1]} dimensions; the "
                       f"{len(codes):,} test codes, coloured by class. {PLANES[min(codes.shape[1], 3)]} Made by: "
                       f"{command}"}
    # "</" would close the script element the data sits in.
    return TEMPLATE.read_text().replace("__EXPLORER_DATA__", json.dumps(data).replace("</", "<\\/"))
