"""An Autoencoder and a Variational Autoencoder for 28x28 images, each returning its own loss.

Encoder 784 -> hidden (ReLU) -> latent, decoder latent -> hidden -> 784 logits (the reference design; Burda et al.
2015: 784-200-200-50, tanh). The loss per image is (reconstruction + beta * KL) / 784: by default the per-pixel MSE
plus the KL weighted per pixel, so loss numbers compare with the design's. literature.py and two_layers.py build the
literature's VAEs on the VAE here.
"""
import torch
import torch.nn.functional as F
from torch import nn

from speed import binary_cross_entropy

PIXELS = 28 * 28
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def hidden_stack(widths, activation):
    """A Linear layer from each width to the next, each followed by the activation (an nn.Module class)."""
    return [module for inputs, outputs in zip(widths, widths[1:])
            for module in (nn.Linear(inputs, outputs), activation())]


def full(output):
    """A network's output in float32 (under --bf16's autocast it is bfloat16); float32 and float64 pass unchanged."""
    return output.float() if output.dtype in (torch.bfloat16, torch.float16) else output


def squared_error(logits, x):
    """Summed squared error of sigmoid(logits) against x over the last dim: (..., 784) -> (...)."""
    return F.mse_loss(torch.sigmoid(logits), x.expand_as(logits), reduction="none").sum(-1)


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, in nats: (B,). Kingma & Welling 2014, Appendix B:
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2); docs/objective.md derives it."""
    return kl_of_each_unit(mu, logvar).sum(1)


def kl_of_each_unit(mu, logvar):
    """The summand of gaussian_kl, each latent unit's KL: (..., latent)."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar)


def reparameterise(mu, logvar, k=None):
    """(z, noise): z = mu + std * noise with noise ~ N(0, I), a sample of N(mu, diag(exp(logvar))) that stays
    differentiable in mu and logvar (Kingma & Welling 2014). With k, k samples of each row of mu (B, latent):
    (B, k, latent); without, one sample of each entry."""
    if k is not None:
        mu, logvar = mu[:, None], logvar[:, None]  # (B, 1, latent)
    noise = torch.randn(mu.shape if k is None else (len(mu), k, *mu.shape[2:]), dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * noise, noise


class AutoEncoder(nn.Module):
    def __init__(self, latent_dims=2, hidden_dims=512, hidden_layers=1, activation="relu", likelihood="gaussian"):
        super().__init__()
        self.latent_dims, self.likelihood = latent_dims, likelihood
        self.code_dims = latent_dims  # what encode() returns and decode() reads
        hidden, activation = [hidden_dims] * hidden_layers, ACTIVATIONS[activation]
        self.encoder = nn.Sequential(nn.Flatten(), *hidden_stack([PIXELS, *hidden], activation))
        self.to_latent = nn.Linear(hidden_dims, latent_dims)  # the VAE's posterior mean
        self.decoder = nn.Sequential(*hidden_stack([latent_dims, *hidden], activation), nn.Linear(hidden_dims, PIXELS))

    def encode(self, x):
        """Images (B, 1, 28, 28) in [0, 1] -> codes (B, latent); the VAE returns its posterior mean."""
        return full(self.to_latent(self.encoder(x)))

    def decode_logits(self, z):
        """Codes (..., latent) -> pixel logits (..., 784): the losses read logits, stable where log(sigmoid) is not."""
        return full(self.decoder(z))

    def decoding_layers(self):  # the modules decode_logits() applies in turn: the explorer page runs them
        return list(self.decoder)

    def decode(self, z):
        """Codes (N, latent) -> images (N, 1, 28, 28) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z)).view(-1, 1, 28, 28)

    def reconstruction_loss(self, logits, x):
        """-log p(x|z) per image up to a constant, logits (B, [k,] 784) -> (B, [k]): gaussian, the summed squared
        error, -log N(x; x_hat, 1/2) less its constant (docs/objective.md); bernoulli, the cross-entropy in nats."""
        error = binary_cross_entropy if self.likelihood == "bernoulli" else squared_error
        with torch.autocast(logits.device.type, enabled=False):  # under --bf16 too: its sums in float32
            return error(logits, x.reshape(len(x), *[1] * (logits.dim() - 2), PIXELS))

    def forward(self, x):
        """(loss, recon, kl): the scalar objective and its parts per image, (B,) each, in nats; an AE's code is
        deterministic and costs no KL."""
        recon = self.reconstruction_loss(self.decode_logits(self.encode(x)), x)  # (B,)
        return recon.mean() / PIXELS, recon, torch.zeros_like(recon)


class VariationalAutoEncoder(AutoEncoder):
    def __init__(self, beta=1.0, **autoencoder_args):
        super().__init__(**autoencoder_args)
        self.beta = beta
        self.to_logvar = nn.Linear(self.to_latent.in_features, self.latent_dims)

    def posterior(self, x):
        """Mean and log-variance of q(z|x) = N(mu, diag(exp(logvar))), (B, latent) each."""
        hidden = self.encoder(x)
        return full(self.to_latent(hidden)), full(self.to_logvar(hidden))

    def forward(self, x):
        """(loss, recon, kl): the negative ELBO with one sample of z (Kingma & Welling's estimator, the KL in closed
        form), and its reconstruction and KL per image, (B,) each."""
        mu, logvar = self.posterior(x)  # (B, latent) each
        z, _ = reparameterise(mu, logvar, 1)  # (B, 1, latent)
        recon = self.reconstruction_loss(self.decode_logits(z), x)[:, 0]  # (B,)
        kl = gaussian_kl(mu, logvar)
        return (recon + self.beta * kl).mean() / PIXELS, recon, kl
