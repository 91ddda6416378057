"""The likelihood literature's VAE on model.py's: k samples of z, the k-sample ELBO or the importance-weighted bound
(Burda, Grosse & Salakhutdinov 2015) with its encoder gradients (standard; DReG, Tucker et al. 2018; STL, Roeder et
al. 2017), the log weights every bound and measurement draws from, and the authors' initialisation."""
import math
from typing import NamedTuple

import torch
from torch import nn

from model import PIXELS, VariationalAutoEncoder, gaussian_kl, kl_of_each_unit, reparameterise

HELD_IN_LOG_Q = ("dreg", "stl")  # the estimators that read q's parameters held fixed inside log q
# The modules of the inference network q (the encoders); every other module is the generative network p's.
INFERENCE_MODULES = ("encoder", "to_latent", "to_logvar", "upper_encoder", "to_top_latent", "to_top_logvar")


class LogWeights(NamedTuple):
    """k samples' parts of log w = log p(x|z) + log p(z) - log q(z|x), (B, k) each, and the KL per image (B,)."""
    recon: torch.Tensor  # -log p(x|z) as trained (the model's reconstruction_loss)
    latent: torch.Tensor  # log p(z) - log q(z|x), every term at the sample (the Gaussians' log 2 pi terms cancel)
    kl: torch.Tensor  # the ELBO's KL: in closed form where there is one, else -latent averaged over the k samples


def sampled_kl(noise, z, logvar):
    """log q(z|x) - log p(z) at each z = mu + std * noise: noise, z (B, k, latent), logvar (B, latent) -> (B, k);
    a one-sample estimate of gaussian_kl, and with the noise held, its reparameterised gradient."""
    return 0.5 * (z.square() - noise.square()).sum(-1) - 0.5 * logvar.sum(-1, keepdim=True)


def reweighted(log_weights, *samples):
    """DReG (Tucker et al. 2018): the gradient reaching each sample z_i, w~_i d log w_i / dz_i with w~ the normalised
    weights, scaled by w~_i once more, so that q's parameters see w~_i^2."""
    normalised = torch.softmax(log_weights.detach(), -1).unsqueeze(-1)  # (B, k, 1)
    for sample in samples:
        if sample.requires_grad:
            sample.register_hook(lambda grad: grad * normalised)


def negative_iwae_bound(log_weights):
    """-log (1/k) sum_i w_i of each image, (B, k) -> (B,) (Burda et al. 2015, eq. 8)."""
    return math.log(log_weights.shape[-1]) - torch.logsumexp(log_weights, -1)


class KSampleVAE(VariationalAutoEncoder):
    """The VAE trained on `objective` over k samples of z per image: "elbo", the negative ELBO with its reconstruction
    averaged over the k samples and the KL in closed form (k = 1 is model.py's VAE, step for step), or "iwae",
    -log (1/k) sum_i w_i, w_i = p(x|z_i) p(z_i) / q(z_i|x) (Burda et al. 2015), with `estimator`'s encoder gradient."""

    def __init__(self, objective="elbo", k=1, estimator="standard", **vae_args):
        super().__init__(**vae_args)
        self.objective, self.k, self.estimator = objective, k, estimator

    def log_weights(self, x, k, estimator="standard"):
        """LogWeights of k samples z ~ q(z|x) per image.

        dreg and stl hold q's parameters fixed inside log q (noise + 0 in value, with (z - mu) / std's gradient in z):
        no score-function term. dreg also reweights the gradient reaching z (reweighted); stl does no more, which drops
        a term of nonzero mean for k > 1 (biased, Tucker et al. 2018). The value and the decoder's gradient are the
        standard estimator's either way.
        """
        mu, logvar = self.posterior(x)  # (B, latent) each
        z, noise = reparameterise(mu, logvar, k)  # (B, k, latent) each
        recon = self.reconstruction_loss(self.decode_logits(z), x)  # (B, k)
        kl = gaussian_kl(mu, logvar)
        if estimator in HELD_IN_LOG_Q:
            noise, logvar = noise + (z - z.detach()) / torch.exp(0.5 * logvar.detach())[:, None], logvar.detach()
        latent = -sampled_kl(noise, z, logvar)
        if estimator == "dreg":
            reweighted(latent - recon, z)
        return LogWeights(recon, latent, kl)

    def forward(self, x):
        if self.objective == "elbo" and self.k == 1:
            return super().forward(x)  # model.py's VAE
        return self.k_sample_loss(x)

    def k_sample_loss(self, x):
        """(loss, recon, kl): the objective over self.k samples, the reconstruction averaged over them and the KL."""
        weights = self.log_weights(x, self.k, self.estimator)
        if self.objective == "iwae":
            per_image = negative_iwae_bound(weights.latent - weights.recon)
        else:
            per_image = weights.recon.mean(1) + self.beta * weights.kl
        return per_image.mean() / PIXELS, weights.recon.mean(1), weights.kl

    def kl_per_dimension(self, x):
        """Each latent unit's KL(q || prior) summed over the images x, a tensor per stochastic layer: here [z's]."""
        return [kl_of_each_unit(*self.posterior(x)).sum(0)]

    def posterior_means(self, x, samples):
        """E_q[z] of each image, a tensor (B, units) per stochastic layer: here [q's mean]."""
        return [self.posterior(x)[0]]


def network_parameters(model):
    """The VAE's parameters by network: {"inference": [q's], "generative": [p's]}, each in the model's order."""
    networks = {"inference": [], "generative": []}
    for name, parameter in model.named_parameters():
        networks["inference" if name.split(".")[0] in INFERENCE_MODULES else "generative"].append(parameter)
    return networks


def initialise(model, scheme, train_images):
    """Re-draw a new model's weights by `scheme` (--init); "torch" keeps nn.Linear's own. glorot: weights uniform on
    +-sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), biases zero, as Burda et al.'s code; glorot-mean also sets
    the output bias to the logit of each pixel's mean (within [0.001, 0.999]): the untrained decoder draws the mean."""
    if scheme == "torch":
        return
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        if scheme == "glorot-mean":
            mean = (train_images.flatten(1).float() / 255).mean(0).clamp(1e-3, 1 - 1e-3)  # (784,)
            model.decoder[-1].bias.copy_(torch.logit(mean))
