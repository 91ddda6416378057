"""Active units as Burda et al. (2015, section 5.2 and Appendix C) count them, and their check that the inactive ones
carry nothing: each latent unit's activity A_u = Cov_x(E_{q(z|x)}[z_u]), a unit active when A_u > 0.01, and the
model with the inactive units removed, whose bound should be the full model's.
"""
import copy

import torch
from torch import nn

import data

THRESHOLD = 0.01  # a unit is active when A_u exceeds this (Burda et al.)
# The count by information beside it: a unit is active when its KL from q to its prior, averaged over the images
# (metrics.kl_per_dimension), exceeds this many nats. With two layers z1's prior is p(z1|z2): a z1 unit that relays
# z2's code varies over the images (A_u counts it) while adding little beyond z2 (this count may not).
KL_THRESHOLD = 0.01
UPPER_SAMPLES = 100  # draws of z1 ~ q(z1|x) an image for the second layer's E_q[z2]
BATCH_SIZE = 500  # images at once: with two layers, UPPER_SAMPLES draws of z1 each


@torch.inference_mode()
def activities(model, images, samples=UPPER_SAMPLES, batch_size=BATCH_SIZE):
    """A_u of every latent unit, a tensor per stochastic layer: [z's], or [z1's, z2's].

    E_q[z] (and E_q[z1]) is q's mean; for z2 it is the mean of q(z2|z1) averaged over z1 ~ q(z1|x), by Monte Carlo
    over `samples` draws of z1 an image, not q(z2|z1) at z1's mean. A_u is the variance of E_q[z_u] over the images.
    """
    means = [model.posterior_means(x, samples) for x in data.batches(images, batch_size, shuffle=False)]
    return [torch.cat(layer).var(0) for layer in zip(*means)]


def active(activity, threshold=THRESHOLD):
    """Which units of a layer are active by A_u (or, with KL_THRESHOLD, by their mean KL): (units,) booleans."""
    return activity > threshold


def without_units(model, keep):
    """A copy of the VAE holding only the latent units that `keep` marks (a boolean mask per stochastic layer, as
    activities() gives): a removed unit's rows of q's mean and log-variance (and of p(z1|z2)'s, for z1) are deleted,
    and its columns of every network that reads the layer. The copy's bound is the full model's over the kept units,
    the removed ones fixed at 0, their prior mean."""
    pruned = copy.deepcopy(model)
    lower = keep[0]
    for name in ("to_latent", "to_logvar") + (("to_prior_mean", "to_prior_logvar") if len(keep) == 2 else ()):
        setattr(pruned, name, _rows(getattr(pruned, name), lower))
    pruned.decoder[0] = _columns(pruned.decoder[0], lower)
    pruned.latent_dims = int(lower.sum())
    if len(keep) == 2:
        upper = keep[1]
        pruned.upper_encoder[0] = _columns(pruned.upper_encoder[0], lower)
        pruned.to_top_latent, pruned.to_top_logvar = _rows(pruned.to_top_latent, upper), _rows(pruned.to_top_logvar, upper)
        pruned.upper_decoder[0] = _columns(pruned.upper_decoder[0], upper)
        pruned.code_dims = int(upper.sum())
    else:
        pruned.code_dims = pruned.latent_dims
    return pruned


def _rows(layer, kept):  # skip_init: the copies draw no random numbers, so a seeded bound after them repeats
    smaller = nn.utils.skip_init(nn.Linear, layer.in_features, int(kept.sum()), device=layer.weight.device)
    with torch.no_grad():
        smaller.weight.copy_(layer.weight[kept])
        smaller.bias.copy_(layer.bias[kept])
    return smaller


def _columns(layer, kept):
    smaller = nn.utils.skip_init(nn.Linear, int(kept.sum()), layer.out_features, device=layer.weight.device)
    with torch.no_grad():
        smaller.weight.copy_(layer.weight[:, kept])
        smaller.bias.copy_(layer.bias)
    return smaller
