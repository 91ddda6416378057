"""An Autoencoder and a Variational Autoencoder for 28x28 images, each returning its own loss.

Network (the reference design): encoder 784 -> hidden (ReLU) -> latent, decoder latent -> hidden (ReLU) -> 784
with a sigmoid; hidden_layers > 1 stacks more hidden layers of the same width (Burda et al. 2015: 784-200-200-50,
tanh). The objective per image is (recon + beta * KL) / 784, averaged over the batch, so with the
default Gaussian likelihood and beta = 1 the loss is the per-pixel MSE plus the KL weighted per pixel,
and loss numbers compare with published runs of this design. The VAE may instead average the ELBO over k samples
of z per image or train on the importance-weighted bound of Burda et al. 2015 (objective, k, estimator;
objectives.py computes them); k = 1 and the ELBO are the default.
"""
import inspect
import math

import torch
from torch import nn

from layers import hidden_stack
from objectives import HELD_IN_LOG_Q, PIXELS, binary_cross_entropy, gaussian_kl, gaussian_log_density, iwae_loss, squared_error


def _full(output):
    """A network's output as what is computed from it needs it: bfloat16 (under --bf16's autocast) cast up to float32,
    float32 and float64 as they are (the same tensor: float32 runs are unchanged)."""
    return output.float() if output.dtype in (torch.bfloat16, torch.float16) else output


class AutoEncoder(nn.Module):
    def __init__(self, latent_dims=2, hidden_dims=512, hidden_layers=1, activation="relu", likelihood="gaussian",
                 beta=1.0, objective="elbo", k=1, estimator="standard", stochastic_layers=1, top_latent_dims=50,
                 top_hidden_dims=100):
        super().__init__()
        self.latent_dims, self.likelihood, self.beta = latent_dims, likelihood, beta
        self.code_dims = latent_dims  # what encode() returns and decode() reads
        # The VAE's training objective over k samples of z per image (objectives.py); the AE's code is deterministic.
        self.objective, self.k, self.estimator = objective, k, estimator
        hidden = [hidden_dims] * hidden_layers
        self.encoder = nn.Sequential(nn.Flatten(), *hidden_stack([PIXELS, *hidden], activation))
        self.to_latent = nn.Linear(hidden_dims, latent_dims)  # the VAE's posterior mean
        self.decoder = nn.Sequential(*hidden_stack([latent_dims, *hidden], activation), nn.Linear(hidden_dims, PIXELS))

    def encode(self, x):
        """Images (B, 1, 28, 28) in [0, 1] -> codes (B, latent); the VAE returns its posterior mean."""
        return _full(self.to_latent(self.encoder(x)))

    def decode_logits(self, z):
        """Codes (..., latent) -> pixel logits (..., 784), before the sigmoid.

        The losses read logits, not decode()'s images: binary_cross_entropy_with_logits is stable where
        log(sigmoid) is not. Under --bf16 the network runs in bfloat16 and its logits come back in float32 (_full): every
        network's output is, so what is computed from it counts in float32.
        """
        return _full(self.decoder(z))

    def decode(self, z):
        """Codes (N, latent) -> images (N, 1, 28, 28) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z)).view(-1, 1, 28, 28)

    def reconstruction_loss(self, logits, x):
        """Negative log-likelihood per image, up to a constant: logits (..., 784) -> (...).

        gaussian: summed squared error, i.e. -log N(x; x_hat, 1/2) less its constant (docs/objective.md);
        bernoulli: summed binary cross-entropy, in nats.
        x holds one image per leading row of logits, in any shape: (B, 1, 28, 28) for logits (B, 784), and for
        logits (B, k, 784), k samples each, (B, 784) or (B, 1, 784), broadcast over the k.
        """
        error = binary_cross_entropy if self.likelihood == "bernoulli" else squared_error
        with torch.autocast(logits.device.type, enabled=False):  # under --bf16 too: its dot product in float32
            return error(logits, x.reshape(len(x), *[1] * (logits.dim() - 2), PIXELS))

    def forward(self, x):
        """Returns (loss, recon, kl): the scalar objective and its parts per image, (B,) each, in nats; an AE's code
        is deterministic and costs no KL."""
        z = self.encode(x)  # (B, latent)
        recon, kl = self.reconstruction_loss(self.decode_logits(z), x), z.new_zeros(len(z))  # (B,) each
        loss = (recon + self.beta * kl).mean() / PIXELS
        return loss, recon, kl


class VariationalAutoEncoder(AutoEncoder):
    def __init__(self, **model_args):  # the AutoEncoder's arguments, MODEL_ARGS
        super().__init__(**model_args)
        self.to_logvar = nn.Linear(self.to_latent.in_features, self.latent_dims)

    def posterior(self, x):
        """Mean and log-variance of q(z|x) = N(mu, diag(exp(logvar))), (B, latent) each."""
        hidden = self.encoder(x)
        return _full(self.to_latent(hidden)), _full(self.to_logvar(hidden))

    def forward(self, x):
        """Returns (loss, recon, kl): the objective over self.k samples of z per image, and per image (B,) the
        reconstruction loss averaged over the samples and the closed-form KL.

        elbo: the negative ELBO with its reconstruction term averaged over the k samples (k = 1: Kingma & Welling's
        estimator with the KL in closed form); iwae: the negative importance-weighted bound (objectives.iwae_loss).
        """
        mu, logvar = self.posterior(x)  # (B, latent) each
        std = torch.exp(0.5 * logvar)
        noise = torch.randn(len(x), self.k, self.latent_dims, dtype=std.dtype, device=std.device)  # (B, k, latent)
        z = mu[:, None] + std[:, None] * noise  # reparameterisation: the samples stay differentiable in mu, std
        recon = self.reconstruction_loss(self.decode_logits(z), x)  # (B, k)
        kl = gaussian_kl(mu, logvar)
        if self.objective == "iwae":
            per_image = iwae_loss(recon, z, noise, std, logvar, self.estimator)
        else:
            per_image = recon.mean(1) + self.beta * kl
        return per_image.mean() / PIXELS, recon.mean(1), kl


class TwoLayerVAE(VariationalAutoEncoder):
    """The VAE with two stochastic layers of Burda et al. 2015 (their Appendix C): q(z1|x) q(z2|z1), p(z2) p(z1|z2)
    p(x|z1), each conditional a diagonal Gaussian (Bernoulli for x) from its own tanh network. q(z1|x) and p(x|z1)
    are the one-layer VAE's networks; encode() and decode() work in the top layer z2, decoding through the means."""

    def __init__(self, **model_args):
        super().__init__(**model_args)
        top, width, depth = model_args["top_latent_dims"], model_args["top_hidden_dims"], model_args["hidden_layers"]
        activation, self.code_dims = model_args["activation"], top
        self.upper_encoder = nn.Sequential(*hidden_stack([self.latent_dims] + [width] * depth, activation))
        self.to_top_latent, self.to_top_logvar = nn.Linear(width, top), nn.Linear(width, top)  # q(z2|z1)
        self.upper_decoder = nn.Sequential(*hidden_stack([top] + [width] * depth, activation))
        self.to_prior_mean, self.to_prior_logvar = nn.Linear(width, self.latent_dims), nn.Linear(width, self.latent_dims)

    def upper_posterior(self, z1, weights=None):
        """Mean and log-variance of q(z2|z1), (..., top) each; `weights` ({layer: its parameters}) in place of its
        own: DReG's held copies."""
        def call(layer, inputs):
            return getattr(self, layer)(inputs) if weights is None else \
                torch.func.functional_call(getattr(self, layer), weights[layer], (inputs,))

        hidden = call("upper_encoder", z1)
        return _full(call("to_top_latent", hidden)), _full(call("to_top_logvar", hidden))

    def prior_of_z1(self, z2):
        """Mean and log-variance of p(z1|z2), (..., latent) each."""
        hidden = self.upper_decoder(z2)
        return _full(self.to_prior_mean(hidden)), _full(self.to_prior_logvar(hidden))

    def encode(self, x):
        return self.upper_posterior(self.posterior(x)[0])[0]  # the mean of q(z2|z1) at the mean of q(z1|x)

    def decode_logits(self, z2):
        return self.decoder(self.prior_of_z1(z2)[0])

    def log_weights(self, x, k, estimator="standard"):
        """(log w, the reconstruction loss as trained), (B, k) each, for k samples (z1, z2) ~ q(z1|x) q(z2|z1):
        log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1), every term sampled (the
        Gaussians' log 2 pi terms cancel), log p(x|z1) as trained (-reconstruction loss).

        dreg: Tucker et al.'s (2018) gradient for the hierarchy (docs/objective.md derives it): log q reads the
        encoders' weights held fixed, and the gradient reaching z2, and z1 where log w reads it directly (its path
        through z2's sampling carries z2's), is scaled by w~_i once more: w~_i^2 to every encoder weight, w~_i kept
        by the decoders, whose gradients pass through no sample. stl: the encoders' weights held in log q, no more.
        The estimator is "standard", "dreg" or "stl" (config.ESTIMATORS)."""
        dreg = estimator == "dreg"
        mu1, logvar1 = self.posterior(x)  # (B, latent) each
        noise1 = torch.randn(len(x), k, self.latent_dims, dtype=mu1.dtype, device=mu1.device)
        z1 = mu1[:, None] + torch.exp(0.5 * logvar1)[:, None] * noise1  # (B, k, latent)
        mu2, logvar2 = self.upper_posterior(z1)  # (B, k, top) each
        z2 = mu2 + torch.exp(0.5 * logvar2) * torch.randn_like(mu2)
        read = z1.view_as(z1) if dreg else z1  # z1 where log w reads it directly: its own node for the hook
        if estimator in HELD_IN_LOG_Q:
            held = {name: {key: value.detach() for key, value in getattr(self, name).named_parameters()}
                    for name in ("upper_encoder", "to_top_latent", "to_top_logvar")}
            mu1, logvar1 = mu1.detach(), logvar1.detach()
            mu2, logvar2 = self.upper_posterior(read, held)
        prior_mean, prior_logvar = self.prior_of_z1(z2)
        recon = self.reconstruction_loss(_full(self.decoder(read)), x)  # (B, k)
        log_weights = (-recon + gaussian_log_density(read, prior_mean, prior_logvar)
                       + gaussian_log_density(z2, torch.zeros_like(z2), torch.zeros_like(z2))
                       - gaussian_log_density(read, mu1[:, None], logvar1[:, None]) - gaussian_log_density(z2, mu2, logvar2))
        if dreg and read.requires_grad:
            normalised = torch.softmax(log_weights.detach(), -1).unsqueeze(-1)  # (B, k, 1)
            for sample in (read, z2):
                sample.register_hook(lambda grad: grad * normalised)
        return log_weights, recon

    def forward(self, x):
        """As the one-layer VAE's; kl is the sampled log q - log p of both layers, averaged over the k samples."""
        log_weights, recon = self.log_weights(x, self.k, self.estimator)
        kl = -(log_weights + recon).mean(1)  # (B,)
        if self.objective == "iwae":
            per_image = math.log(self.k) - torch.logsumexp(log_weights, 1)
        else:
            per_image = recon.mean(1) + self.beta * kl
        return per_image.mean() / PIXELS, recon.mean(1), kl


# The modules of the inference network q (the encoders); every other module is the generative network p's.
INFERENCE_MODULES = ("encoder", "to_latent", "to_logvar", "upper_encoder", "to_top_latent", "to_top_logvar")


def network_parameters(model):
    """The VAE's parameters by network: {"inference": [q's], "generative": [p's]}, each in the model's order."""
    networks = {"inference": [], "generative": []}
    for name, parameter in model.named_parameters():
        networks["inference" if name.split(".")[0] in INFERENCE_MODULES else "generative"].append(parameter)
    return networks


MODEL_CLASSES = {"ae": AutoEncoder, "vae": VariationalAutoEncoder}
# The constructor's arguments, named once (in its signature): what a checkpoint stores to rebuild the model.
MODEL_ARGS = tuple(inspect.signature(AutoEncoder).parameters)


def model_args(cfg):
    """The constructor arguments of a model, taken from a config; stored in checkpoints."""
    return {key: getattr(cfg, key) for key in MODEL_ARGS}


def construct(name, args):
    """Model `name` built from its constructor arguments: the VAE with two stochastic layers where they ask for it."""
    return (TwoLayerVAE if name == "vae" and args["stochastic_layers"] == 2 else MODEL_CLASSES[name])(**args)


def build(name, cfg):
    return construct(name, model_args(cfg))


def parameter_count(name, args):
    """How many parameters model `name` has with constructor arguments `args`, counted without allocating them."""
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in construct(name, args).parameters())
