"""The k-sample objectives: the ELBO over k samples, the IWAE bound (Burda et al. 2015) and its DReG gradient
(Tucker et al. 2018), each against a direct computation for the same noise."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from literature import KSampleVAE, sampled_kl
from model import PIXELS, gaussian_kl

BATCH, LATENT = 6, 3


def tiny_vae(seed=0, **args):
    torch.manual_seed(seed)
    return KSampleVAE(latent_dims=LATENT, hidden_dims=16, likelihood="bernoulli", **args)


def binary_images(count=BATCH, seed=1):
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


def drawn_as_the_model_draws(model, x, seed):
    """(mu, logvar, noise (B, k, latent), z): what the model's forward draws after torch.manual_seed(seed)."""
    mu, logvar = model.posterior(x)
    torch.manual_seed(seed)
    noise = torch.randn(len(x), model.k, model.latent_dims)
    return mu, logvar, noise, mu[:, None] + torch.exp(0.5 * logvar)[:, None] * noise


def loss_of(model, x, seed):
    torch.manual_seed(seed)
    return model(x)


def test_the_k_sample_elbo_is_the_mean_of_k_one_sample_elbos():
    model, x = tiny_vae(objective="elbo", k=4), binary_images()
    loss, recon, kl = loss_of(model, x, seed=3)
    mu, logvar, noise, z = drawn_as_the_model_draws(model, x, seed=3)
    one_sample = [model.reconstruction_loss(model.decode_logits(z[:, i]), x) + gaussian_kl(mu, logvar)
                  for i in range(4)]  # (B,) each
    assert torch.allclose(loss, torch.stack(one_sample).mean(0).mean() / PIXELS, rtol=1e-6)
    assert torch.allclose(recon + kl, torch.stack(one_sample).mean(0), rtol=1e-6)


def test_the_iwae_bound_with_one_sample_is_the_elbo_with_its_kl_sampled():
    """k = 1: -log w = -log p(x|z) + log q(z|x) - log p(z) for the same z; the closed-form KL is its mean over z."""
    model, x = tiny_vae(objective="iwae", k=1), binary_images()
    loss, recon, kl = loss_of(model, x, seed=5)
    mu, logvar, noise, z = drawn_as_the_model_draws(model, x, seed=5)
    elbo = tiny_vae(objective="elbo", k=1)
    _, elbo_recon, elbo_kl = loss_of(elbo, x, seed=5)
    assert torch.equal(recon, elbo_recon) and torch.equal(kl, elbo_kl)  # the same z, decoded the same way
    assert torch.allclose(loss, (recon + sampled_kl(noise, z, logvar)[:, 0]).mean() / PIXELS, rtol=1e-6)
    assert not torch.allclose(sampled_kl(noise, z, logvar)[:, 0], kl, atol=1e-3)  # the KL differs by its noise ...
    many = torch.randn(BATCH, 20000, LATENT)
    mean_kl = sampled_kl(many, mu[:, None] + torch.exp(0.5 * logvar)[:, None] * many, logvar).mean(1)
    assert torch.allclose(mean_kl, gaussian_kl(mu, logvar), atol=0.02)  # ... whose mean is the closed form


def test_the_iwae_bound_is_torch_distributions_log_mean_weight_and_at_most_the_elbo():
    k = 7
    model, x = tiny_vae(objective="iwae", k=k), binary_images()
    loss, _, _ = loss_of(model, x, seed=9)
    mu, logvar, noise, z = drawn_as_the_model_draws(model, x, seed=9)
    std = torch.exp(0.5 * logvar)[:, None]
    log_weights = (Bernoulli(logits=model.decode_logits(z)).log_prob(x.flatten(1)[:, None]).sum(-1)
                   + Normal(0.0, 1.0).log_prob(z).sum(-1) - Normal(mu[:, None], std).log_prob(z).sum(-1))  # (B, k)
    direct = -(torch.logsumexp(log_weights, 1) - math.log(k))  # (B,)
    assert torch.allclose(loss, direct.mean() / PIXELS, rtol=1e-5)
    recon = model.reconstruction_loss(model.decode_logits(z), x)  # (B, k)
    torch.manual_seed(9)
    drawn = model.log_weights(x, k)  # the same samples, z
    per_image = math.log(k) - torch.logsumexp(drawn.latent - drawn.recon, 1)
    k_sample_elbo = (recon + sampled_kl(noise, z, logvar)).mean(1)  # the same samples' -ELBO estimate
    assert (per_image <= k_sample_elbo + 1e-4).all()  # Jensen: log of the mean weight >= mean of the log weights
    assert (per_image < k_sample_elbo - 0.01).any()  # and strictly, where the weights differ


def gradients(model, x, seed):
    model.zero_grad()
    loss, _, _ = loss_of(model, x, seed)
    loss.backward()
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


def test_dreg_leaves_the_loss_and_the_decoders_gradient_exactly_as_they_were():
    x = binary_images()
    standard, dreg = tiny_vae(objective="iwae", k=5), tiny_vae(objective="iwae", k=5, estimator="dreg")
    assert torch.equal(loss_of(standard, x, 4)[0], loss_of(dreg, x, 4)[0])
    standard_grads, dreg_grads = gradients(standard, x, seed=4), gradients(dreg, x, seed=4)
    decoder = [name for name in standard_grads if name.startswith("decoder.")]
    assert decoder and all(torch.equal(standard_grads[name], dreg_grads[name]) for name in decoder)
    assert not torch.allclose(standard_grads["to_logvar.weight"], dreg_grads["to_logvar.weight"])


@pytest.mark.parametrize("estimator, power", [("dreg", 2), ("stl", 1)])
def test_the_dreg_and_stl_encoder_gradients_are_their_formulas_computed_directly(estimator, power):
    """Tucker et al. 2018: DReG's encoder gradient is -sum_i w~_i^2 d log w_i / dphi through z_i only, with
    w~ the normalised weights held constant and log q's parameters held fixed; sticking the landing's (Roeder et al.
    2017) is the same with w~_i in place of w~_i^2. Here built from torch.distributions and
    torch.func.functional_call, in float64, and compared with the model's loss.backward()."""
    x = binary_images(count=3).double()
    model = tiny_vae(objective="iwae", k=4, estimator=estimator).double()
    gradients_as_trained = gradients(model, x, seed=7)
    torch.manual_seed(7)
    noise = torch.randn(len(x), model.k, model.latent_dims, dtype=torch.float64)  # as the model's forward draws it
    params = dict(model.named_parameters())
    encoder = {name: value for name, value in params.items() if not name.startswith("decoder.")}

    def posterior(weights):
        def call(module, prefix, inputs):
            own = {name[len(prefix):]: value for name, value in weights.items() if name.startswith(prefix)}
            return torch.func.functional_call(module, own, (inputs,))

        hidden = call(model.encoder, "encoder.", x)
        return call(model.to_latent, "to_latent.", hidden), call(model.to_logvar, "to_logvar.", hidden)

    mu, logvar = posterior(encoder)
    held_mu, held_logvar = posterior({name: value.detach() for name, value in encoder.items()})
    z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * noise  # (B, k, latent): the path through the samples
    logits = model.decoder(z)
    log_weights = (Bernoulli(logits=logits).log_prob(x.flatten(1)[:, None]).sum(-1)
                   + Normal(0.0, 1.0).log_prob(z).sum(-1)
                   - Normal(held_mu[:, None], torch.exp(0.5 * held_logvar)[:, None]).log_prob(z).sum(-1))  # (B, k)
    normalised = torch.softmax(log_weights.detach(), -1)
    surrogate = -(normalised.pow(power) * log_weights).sum() / (len(x) * PIXELS)  # the model's loss: a mean per pixel
    direct = torch.autograd.grad(surrogate, list(encoder.values()))
    for name, gradient in zip(encoder, direct):
        assert torch.allclose(gradients_as_trained[name], gradient, rtol=0, atol=1e-10), name


def encoder_gradients(model, x, draws):
    """(draws, encoder parameters): the encoder's gradient, one row per draw of the noise."""
    rows = []
    for seed in range(draws):
        grads = gradients(model, x, seed)
        rows.append(torch.cat([grad.flatten() for name, grad in grads.items() if not name.startswith("decoder.")]))
    return torch.stack(rows)


def test_dreg_estimates_the_same_encoder_gradient_with_less_variance():
    x = binary_images(count=2)
    standard = encoder_gradients(tiny_vae(objective="iwae", k=10), x, draws=300)
    dreg = encoder_gradients(tiny_vae(objective="iwae", k=10, estimator="dreg"), x, draws=300)
    standard_error = ((standard.var(0) + dreg.var(0)) / len(standard)).sqrt()  # of the difference of the means
    difference = (standard.mean(0) - dreg.mean(0)).abs()
    assert (difference <= 5 * standard_error + 1e-6).all()  # unbiased: the means agree to their Monte-Carlo noise
    assert dreg.var(0).sum() < 0.5 * standard.var(0).sum()


def test_stl_is_unbiased_with_one_sample_and_biased_with_five():
    """With k = 1 the dropped score-function term has mean zero (Roeder et al. 2017); with k > 1 it does not, and
    STL's mean encoder gradient moves off the standard estimator's (Tucker et al. 2018), by many standard errors."""
    x = binary_images(count=2)
    for k, agrees in ((1, True), (5, False)):
        standard = encoder_gradients(tiny_vae(objective="iwae", k=k), x, draws=1000)
        stl = encoder_gradients(tiny_vae(objective="iwae", k=k, estimator="stl"), x, draws=1000)
        standard_error = ((standard.var(0) + stl.var(0)) / len(standard)).sqrt()
        gap = ((standard.mean(0) - stl.mean(0)).abs() / (standard_error + 1e-12)).max()
        assert (gap < 5) if agrees else (gap > 7), (k, gap)


def test_the_k_samples_keep_the_default_single_sample_draws():
    """k = 1 draws the noise the model drew before k existed: (B, 1, latent) from the same generator state."""
    model, x = tiny_vae(), binary_images()
    loss, recon, kl = loss_of(model, x, seed=2)
    mu, logvar = model.posterior(x)
    torch.manual_seed(2)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    expected = model.reconstruction_loss(model.decode_logits(z), x)
    assert torch.equal(recon, expected)
    assert torch.equal(loss, (expected + gaussian_kl(mu, logvar)).mean() / PIXELS)
