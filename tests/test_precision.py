"""--bf16: the networks' matrix multiplies in bfloat16 (with float32 weights), and what is computed from their
outputs, the likelihood, the log weights, their softmax, the KL and the loss, in float32. On the same weights,
images and noise, the figures lie within a few hundredths of a nat of float32's per image."""
from types import SimpleNamespace

import pytest
import torch

import config
from checkpoints import build, model_args

# In nats per image (log w: per sample). Measured at initialisation on Burda et al.'s networks: the loss within
# 0.002 of float32's, each log w within 0.07 (one layer) and 0.11 (two), the normalised weights within 0.015, where
# the k log weights of an image spread over 2 to 3 nats; a likelihood summed in bfloat16 (an 8-bit mantissa at the
# ~540 nats it sums to) is off by about a nat.
LOSS_TOLERANCE, LOG_WEIGHT_TOLERANCE, WEIGHT_TOLERANCE = 0.02, 0.25, 0.03
K, BATCH = 50, 20


def burda_vae(layers, seed=0):
    torch.manual_seed(seed)
    network = config.BURDA2015_TWO_LAYERS if layers == 2 else config.BURDA2015
    return build("vae", model_args(SimpleNamespace(**{**config.defaults(), **network, "objective": "iwae", "k": K})))


def images():
    return (torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.7).float()


def log_weights(model, x, bf16):
    """(log w (B, k), the per-image loss in nats (B,)) under autocast or not, for the same noise (seed 2)."""
    torch.manual_seed(2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        drawn = model.log_weights(x, K)
        weights = drawn.latent - drawn.recon
        torch.manual_seed(2)
        loss = model(x)[0]
    return weights, loss


@pytest.mark.parametrize("layers", [1, 2])
def test_bf16_keeps_the_loss_and_the_log_weights_within_hundredths_of_a_nat_of_float32(layers):
    model, x = burda_vae(layers), images()
    weights32, loss32 = log_weights(model, x, bf16=False)
    weights16, loss16 = log_weights(model, x, bf16=True)
    assert weights16.dtype == loss16.dtype == torch.float32
    assert abs(loss16 - loss32).item() * 784 < LOSS_TOLERANCE  # the loss is per pixel: x 784 is per image
    assert (weights16 - weights32).abs().max() < LOG_WEIGHT_TOLERANCE
    normalised = torch.softmax(weights16, -1) - torch.softmax(weights32, -1)
    assert normalised.abs().max() < WEIGHT_TOLERANCE
    assert not torch.equal(weights16, weights32)  # the networks did run in bfloat16


@pytest.mark.parametrize("layers", [1, 2])
def test_bf16_gradients_reach_float32_weights_and_match_float32_s_direction(layers):
    model, x = burda_vae(layers), images()
    gradients = {}
    for bf16 in (False, True):
        model.zero_grad()
        torch.manual_seed(2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)[0].backward()
        gradients[bf16] = torch.cat([parameter.grad.flatten() for parameter in model.parameters()])
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert torch.nn.functional.cosine_similarity(gradients[True], gradients[False], dim=0) > 0.99
