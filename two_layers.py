"""The VAE with two stochastic layers of Burda et al. 2015 (their Appendix C): q(z1|x) q(z2|z1), p(z2) p(z1|z2)
p(x|z1), each conditional a diagonal Gaussian (Bernoulli for x) from its own tanh network."""
import torch
from torch import nn

from literature import HELD_IN_LOG_Q, KSampleVAE, LogWeights, reweighted
from model import full, hidden_stack, kl_of_each_unit, reparameterise


def gaussian_log_density(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))) of each dimension, less its -1/2 log(2 pi): (..., latent)."""
    return -0.5 * ((z - mean).square() * torch.exp(-logvar) + logvar)


class TwoLayerVAE(KSampleVAE):
    """q(z1|x) and p(x|z1) are the one-layer VAE's networks; encode() and decode() work in the top layer z2, decoding
    through the means."""

    def __init__(self, top_latent_dims=50, top_hidden_dims=100, **k_sample_args):
        super().__init__(**k_sample_args)
        # The encoder is a Flatten, then each hidden layer's Linear and activation: the upper networks match its depth.
        width, depth = top_hidden_dims, len(self.encoder) // 2
        activation, self.code_dims = type(self.encoder[2]), top_latent_dims
        self.upper_encoder = nn.Sequential(*hidden_stack([self.latent_dims] + [width] * depth, activation))
        self.to_top_latent = nn.Linear(width, top_latent_dims)  # q(z2|z1)
        self.to_top_logvar = nn.Linear(width, top_latent_dims)
        self.upper_decoder = nn.Sequential(*hidden_stack([top_latent_dims] + [width] * depth, activation))
        self.to_prior_mean = nn.Linear(width, self.latent_dims)  # p(z1|z2)
        self.to_prior_logvar = nn.Linear(width, self.latent_dims)

    def upper_posterior(self, z1, weights=None):
        """Mean and log-variance of q(z2|z1), (..., top) each; `weights` ({layer: its parameters}) in place of its
        own: DReG's and STL's held copies."""
        def call(layer, inputs):
            return getattr(self, layer)(inputs) if weights is None else \
                torch.func.functional_call(getattr(self, layer), weights[layer], (inputs,))

        hidden = call("upper_encoder", z1)
        return full(call("to_top_latent", hidden)), full(call("to_top_logvar", hidden))

    def prior_of_z1(self, z2):
        """Mean and log-variance of p(z1|z2), (..., latent) each."""
        hidden = self.upper_decoder(z2)
        return full(self.to_prior_mean(hidden)), full(self.to_prior_logvar(hidden))

    def encode(self, x):
        return self.upper_posterior(self.posterior(x)[0])[0]  # the mean of q(z2|z1) at the mean of q(z1|x)

    def decode_logits(self, z2):
        return full(self.decoder(self.prior_of_z1(z2)[0]))

    def decoding_layers(self):
        return [*self.upper_decoder, self.to_prior_mean, *self.decoder]  # z2 -> the mean of p(z1|z2) -> logits

    def log_weights(self, x, k, estimator="standard"):
        """LogWeights of k samples (z1, z2) ~ q(z1|x) q(z2|z1): log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1),
        every term sampled; kl is its negative averaged over the k samples.

        dreg: Tucker et al.'s (2018) gradient for the hierarchy (docs/objective.md derives it): log q reads the
        encoders' weights held fixed, and the gradient reaching z2, and z1 where log w reads it directly (its path
        through z2's sampling carries z2's), is scaled by w~_i once more. stl: the encoders' weights held, no more.
        """
        mu1, logvar1 = self.posterior(x)  # (B, latent) each
        z1, _ = reparameterise(mu1, logvar1, k)  # (B, k, latent)
        mu2, logvar2 = self.upper_posterior(z1)  # (B, k, top) each
        z2, _ = reparameterise(mu2, logvar2)
        read = z1.view_as(z1) if estimator == "dreg" else z1  # z1 where log w reads it directly: its own node
        if estimator in HELD_IN_LOG_Q:
            held = {name: {key: value.detach() for key, value in getattr(self, name).named_parameters()}
                    for name in ("upper_encoder", "to_top_latent", "to_top_logvar")}
            mu1, logvar1 = mu1.detach(), logvar1.detach()
            mu2, logvar2 = self.upper_posterior(read, held)
        recon = self.reconstruction_loss(full(self.decoder(read)), x)  # (B, k)
        lower = (gaussian_log_density(read, *self.prior_of_z1(z2))
                 - gaussian_log_density(read, mu1[:, None], logvar1[:, None]))  # (B, k, latent)
        upper = (gaussian_log_density(z2, torch.zeros_like(z2), torch.zeros_like(z2))
                 - gaussian_log_density(z2, mu2, logvar2))  # (B, k, top)
        latent = lower.sum(-1) + upper.sum(-1)  # (B, k)
        if estimator == "dreg":
            reweighted(latent - recon, read, z2)
        return LogWeights(recon, latent, -latent.mean(1))

    def forward(self, x):
        return self.k_sample_loss(x)

    def kl_per_dimension(self, x):
        """[z1's, z2's], summed over the images: z2's is KL(q(z2|z1) || N(0, I)) in closed form at one z1 ~ q(z1|x)
        an image; z1's prior reads a z2 drawn from that z1, so its term is sampled, log q(z1|x) - log p(z1|z2) at
        that (z1, z2). Together they are the -ELBO's KL, up to sampling."""
        mu1, logvar1 = self.posterior(x)  # (B, latent) each
        z1, _ = reparameterise(mu1, logvar1)
        mu2, logvar2 = self.upper_posterior(z1)  # (B, top) each
        z2, _ = reparameterise(mu2, logvar2)
        lower = gaussian_log_density(z1, mu1, logvar1) - gaussian_log_density(z1, *self.prior_of_z1(z2))
        return [lower.sum(0), kl_of_each_unit(mu2, logvar2).sum(0)]

    def posterior_means(self, x, samples):
        """[E_q[z1], E_q[z2]]: z2's is q(z2|z1)'s mean averaged over `samples` draws of z1 ~ q(z1|x) an image, by Monte
        Carlo, not q(z2|z1) at z1's mean (Burda et al.'s statistic)."""
        mu1, logvar1 = self.posterior(x)
        z1, _ = reparameterise(mu1, logvar1, samples)  # (B, samples, latent)
        return [mu1, self.upper_posterior(z1)[0].mean(1)]
