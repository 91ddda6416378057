"""An Autoencoder and a Variational Autoencoder for 28x28 images, each returning its own loss.

Network (the reference design): encoder 784 -> hidden (ReLU) -> latent, decoder latent -> hidden (ReLU) -> 784
with a sigmoid; hidden_layers > 1 stacks more hidden layers of the same width (Burda et al. 2015: 784-200-200-50,
tanh). The objective per image is (recon + beta * KL) / 784, averaged over the batch, so with the
default Gaussian likelihood and beta = 1 the loss is the per-pixel MSE plus the KL weighted per pixel,
and loss numbers compare with published runs of this design.
"""
import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 28 * 28


class Tanh(nn.Module):
    """tanh(x), computed as 2 sigmoid(2x) - 1: the same function (to float rounding), and on the CPU torch's sigmoid
    is vectorised where its tanh is not, about 4 times faster on a (2048, 200) tensor. The gradient is tanh's own."""

    def forward(self, x):
        return _SigmoidTanh.apply(x)


class _SigmoidTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": Tanh}


def hidden_stack(widths, activation):
    """A Linear layer from each width to the next, each followed by the activation."""
    return [module for inputs, outputs in zip(widths, widths[1:])
            for module in (nn.Linear(inputs, outputs), ACTIVATIONS[activation]())]


class AutoEncoder(nn.Module):
    def __init__(self, latent_dims=2, hidden_dims=512, hidden_layers=1, activation="relu", likelihood="gaussian",
                 beta=1.0):
        super().__init__()
        self.latent_dims, self.likelihood, self.beta = latent_dims, likelihood, beta
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

    def sample_latent(self, x):
        """The code the loss decodes and its KL per image; an AE's code is deterministic and costs no KL."""
        z = self.encode(x)
        return z, z.new_zeros(len(z))

    def reconstruction_loss(self, logits, x):
        """Negative log-likelihood per image, up to a constant: logits (..., 784) -> (...).

        gaussian: summed squared error, i.e. -log N(x; x_hat, 1/2) less its constant (see README);
        bernoulli: summed binary cross-entropy, in nats.
        x holds one image per leading row of logits, in any shape: (B, 1, 28, 28) for logits (B, 784), and for
        logits (B, k, 784), k samples each, (B, 784) or (B, 1, 784), broadcast over the k.
        """
        error = binary_cross_entropy if self.likelihood == "bernoulli" else squared_error
        return error(logits, x.reshape(len(x), *[1] * (logits.dim() - 2), PIXELS))

    def forward(self, x):
        """Returns (loss, recon, kl): the scalar objective and its parts per image, (B,) each, in nats."""
        z, kl = self.sample_latent(x)  # (B, latent), (B,)
        recon = self.reconstruction_loss(self.decode_logits(z), x)  # (B,)
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

    def sample_latent(self, x):
        mu, logvar = self.posterior(x)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn_like(std)  # reparameterisation: the sample stays differentiable in mu, std
        return z, gaussian_kl(mu, logvar)


def squared_error(logits, x):
    """Summed squared error of sigmoid(logits) against x over the last dim: (..., 784) -> (...)."""
    # mse_loss runs the difference and its square as one kernel each way: measurably faster on CPU.
    return F.mse_loss(torch.sigmoid(logits), x.expand_as(logits), reduction="none").sum(-1)


def binary_cross_entropy(logits, x):
    """Summed binary cross-entropy in nats over the last dim: (..., 784) -> (...); x broadcasts against logits
    (the bound scores (B, k, 784) logits against (B, 1, 784) images)."""
    return _BinaryCrossEntropy.apply(logits, x)


class _BinaryCrossEntropy(torch.autograd.Function):
    """-[x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))] summed over pixels, with its gradient sigmoid(l) - x.

    As softplus(l) - x l = |l| / 2 + l (1/2 - x) - log sigmoid(|l|), stable for any l (sigmoid(|l|) lies in
    [1/2, 1]). Written with the ops torch vectorises on the CPU: its softplus, log1p and logsigmoid are 5 to 10
    times slower than sigmoid and log, and binary_cross_entropy_with_logits is built on them.
    """

    @staticmethod
    def forward(ctx, logits, x):
        ctx.save_for_backward(logits, x)
        magnitude = logits.abs()
        linear = magnitude.sum(-1).mul_(0.5).add_(torch.linalg.vecdot(logits, 0.5 - x))  # (...)
        # The product of 98 sigmoids of |l| is at least 2^-98, far above float32's smallest normal number, so
        # one log per 98 pixels sums the same logs (to float rounding) for a hundredth of the log calls.
        groups = magnitude.sigmoid_().unflatten(-1, (-1, 98)).prod(-1)  # (..., 8)
        return linear.sub_(groups.log_().sum(-1))

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        return torch.sigmoid(logits).sub_(x).mul_(grad.unsqueeze(-1)), None


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, in nats: (B,).

    Closed form from Kingma & Welling 2014, "Auto-Encoding Variational Bayes", Appendix B:
    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2). The README derives it.
    """
    return 0.5 * twice_kl_per_dimension(mu, logvar).sum(1)


def twice_kl_per_dimension(mu, logvar):
    """2 KL of each latent dimension, (B, latent): the summand of gaussian_kl."""
    return mu.square() + logvar.exp() - 1 - logvar


def decoder_variance(model):
    """The variance of the Gaussian decoder the model was trained as (None for Bernoulli).

    The loss (squared error + beta * KL) / 784 is, divided by beta, the negative ELBO of p(x|z) = N(x_hat, beta/2)
    per pixel, scaled (README, "The KL term"): beta = 1 is variance 1/2.
    """
    return model.beta / 2 if model.likelihood == "gaussian" else None


def reconstruction_nll(model, recon):
    """-log p(x|z) in nats of the decoder the model was trained as, from its reconstruction_loss `recon` (any shape).

    Bernoulli: the binary cross-entropy itself. Gaussian with variance s = beta/2 per pixel:
    squared error / (2 s) + 784/2 * log(2 pi s). Undefined (nan) for a Gaussian trained with beta = 0.
    """
    variance = decoder_variance(model)
    if variance is None:
        return recon
    if variance == 0:
        return torch.full_like(recon, math.nan) if torch.is_tensor(recon) else math.nan
    return recon / (2 * variance) + 0.5 * PIXELS * math.log(2 * math.pi * variance)


def log_likelihood(model, logits, x):
    """log p(x|z) per image as a normalised density or probability, logits (..., 784) -> (...)."""
    return -reconstruction_nll(model, model.reconstruction_loss(logits, x))


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
