"""The objectives the models' forward passes compute, per image in nats: the likelihoods (squared error,
binary cross-entropy), the Gaussian KL, and the importance-weighted bound of Burda et al. (2015) with the doubly
reparameterised gradient of Tucker et al. (2018). metrics.py scores trained models with the same functions.
"""
import math

import torch
import torch.nn.functional as F

PIXELS = 28 * 28
HELD_IN_LOG_Q = ("dreg", "stl")  # the estimators that read q's parameters held fixed inside log q


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
    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2). docs/objective.md derives it.
    """
    return 0.5 * twice_kl_per_dimension(mu, logvar).sum(1)


def twice_kl_per_dimension(mu, logvar):
    """2 KL of each latent dimension, (B, latent): the summand of gaussian_kl."""
    return mu.square() + logvar.exp() - 1 - logvar


def sampled_kl(noise, z, logvar):
    """log q(z|x) - log p(z) at each sample z = mu + std * noise: noise, z (B, k, latent), logvar (B, latent) -> (B, k).

    A one-sample estimate of gaussian_kl (its mean over z ~ q); the Gaussians' log(2 pi) terms cancel. With the
    noise held fixed this is also the estimate's reparameterised gradient: d/dz and d/dlogvar of the same formula.
    """
    return 0.5 * (z.square() - noise.square()).sum(-1) - 0.5 * logvar.sum(-1, keepdim=True)


def gaussian_log_density(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))) summed over the last dim, less its -1/2 log(2 pi) per dimension: (...,)."""
    return gaussian_log_density_per_dimension(z, mean, logvar).sum(-1)


def gaussian_log_density_per_dimension(z, mean, logvar):
    """Each dimension's term of gaussian_log_density: (..., latent)."""
    return -0.5 * ((z - mean).square() * torch.exp(-logvar) + logvar)


def iwae_loss(recon, z, noise, std, logvar, estimator="standard"):
    """-log (1/k) sum_i w_i per image, (B,): the negative importance-weighted bound of Burda et al. 2015, with
    w_i = p(x|z_i) p(z_i) / q(z_i|x) for the k samples z (B, k, latent) drawn as mu + std * noise, and recon
    (B, k) the reconstruction loss -log p(x|z_i) as trained. k = 1 is the ELBO with its KL sampled, not closed-form.

    estimator "dreg": the encoder's gradient is the doubly reparameterised estimator of Tucker, Lawson, Gu & Maddison
    2018: q's parameters are held fixed inside log q (so no score-function term) and the gradient that reaches each
    z_i, w~_i d log w_i / dz_i with w~ the normalised weights, is scaled by w~_i once more. "stl": sticking the
    landing (Roeder, Wu & Duvenaud 2017), q's parameters held inside log q and nothing more: sum_i w~_i d log w_i /
    dz_i dz_i / dphi, which drops a term of nonzero mean for k > 1 (biased, Tucker et al. 2018). Either way the loss's
    value and the decoder's gradient are exactly those of the standard estimator.
    """
    dreg = estimator == "dreg"
    if estimator in HELD_IN_LOG_Q:
        # noise + 0 in value, but with (z - mu) / std's gradient in z, and logvar fixed: log q with q's parameters held.
        noise, logvar = noise + (z - z.detach()) / std.detach()[:, None], logvar.detach()
    log_weights = -recon - sampled_kl(noise, z, logvar)  # (B, k)
    if dreg and z.requires_grad:
        normalised = torch.softmax(log_weights.detach(), -1).unsqueeze(-1)  # (B, k, 1)
        z.register_hook(lambda grad: grad * normalised)
    return math.log(log_weights.shape[-1]) - torch.logsumexp(log_weights, -1)


def decoder_variance(model):
    """The variance of the Gaussian decoder the model was trained as (None for Bernoulli).

    The loss (squared error + beta * KL) / 784 is, divided by beta, the negative ELBO of p(x|z) = N(x_hat, beta/2)
    per pixel, scaled (docs/objective.md, "The weighting"): beta = 1 is variance 1/2.
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
