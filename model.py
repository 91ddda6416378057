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

import torch
from torch import nn

from layers import hidden_stack
from objectives import PIXELS, binary_cross_entropy, gaussian_kl, iwae_loss, squared_error


class AutoEncoder(nn.Module):
    def __init__(self, latent_dims=2, hidden_dims=512, hidden_layers=1, activation="relu", likelihood="gaussian",
                 beta=1.0, objective="elbo", k=1, estimator="standard"):
        super().__init__()
        self.latent_dims, self.likelihood, self.beta = latent_dims, likelihood, beta
        # The VAE's training objective over k samples of z per image (objectives.py); the AE's code is deterministic.
        self.objective, self.k, self.estimator = objective, k, estimator
        hidden = [hidden_dims] * hidden_layers
        self.encoder = nn.Sequential(nn.Flatten(), *hidden_stack([PIXELS, *hidden], activation))
        self.to_latent = nn.Linear(hidden_dims, latent_dims)  # the VAE's posterior mean
        self.decoder = nn.Sequential(*hidden_stack([latent_dims, *hidden], activation), nn.Linear(hidden_dims, PIXELS))

    def encode(self, x):
        """Images (B, 1, 28, 28) in [0, 1] -> codes (B, latent); the VAE returns its posterior mean."""
        return self.to_latent(self.encoder(x))

    def decode_logits(self, z):
        """Codes (..., latent) -> pixel logits (..., 784), before the sigmoid.

        The losses read logits, not decode()'s images: binary_cross_entropy_with_logits is stable where
        log(sigmoid) is not.
        """
        return self.decoder(z)

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
        return self.to_latent(hidden), self.to_logvar(hidden)

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
            per_image = iwae_loss(recon, z, noise, std, logvar, dreg=self.estimator == "dreg")
        else:
            per_image = recon.mean(1) + self.beta * kl
        return per_image.mean() / PIXELS, recon.mean(1), kl


def initialise(model, scheme, train_images):
    """Re-draw a freshly built model's weights by `scheme` (config.INITS); "torch" keeps nn.Linear's own.

    glorot: every Linear's weight uniform on +-sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), biases zero, as
    in Burda et al.'s code and Keras. glorot-mean also sets the decoder's output bias to the logit of each pixel's
    mean over `train_images` (uint8, (N, 28, 28)), so the untrained decoder already draws the average image; the
    mean is kept within [0.001, 0.999], where the logit is finite.
    """
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


MODEL_CLASSES = {"ae": AutoEncoder, "vae": VariationalAutoEncoder}
# The constructor's arguments, named once (in its signature): what a checkpoint stores to rebuild the model.
MODEL_ARGS = tuple(inspect.signature(AutoEncoder).parameters)


def model_args(cfg):
    """The constructor arguments of a model, taken from a config; stored in checkpoints."""
    return {key: getattr(cfg, key) for key in MODEL_ARGS}


def build(name, cfg):
    return MODEL_CLASSES[name](**model_args(cfg))


def parameter_count(name, args):
    """How many parameters model `name` has with constructor arguments `args`, counted without allocating them."""
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in MODEL_CLASSES[name](**args).parameters())
