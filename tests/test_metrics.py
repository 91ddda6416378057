"""The estimators behind test.py's numbers: importance-weighted bound, kNN accuracy, active units."""
import math

import pytest
import torch
import torch.nn.functional as F

import data
import units
from loop import evaluate
from metrics import (importance_weighted_nll, kl_per_dimension, knn_accuracy, mean_and_standard_error, negative_elbo,
                     reconstruction_nll, what_the_nats_are)
from literature import KSampleVAE
from model import gaussian_kl


def tiny_vae(likelihood="bernoulli", seed=0):
    torch.manual_seed(seed)
    return KSampleVAE(latent_dims=2, hidden_dims=32, likelihood=likelihood)


def tiny_images(count=64, seed=0):
    return torch.randint(0, 256, (count, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_one_importance_sample_is_the_elbo(likelihood):
    """With k = 1 the bound is a one-sample ELBO estimate: over many draws it meets the closed-form-KL ELBO."""
    model = tiny_vae(likelihood)
    images = tiny_images(64).repeat(40, 1, 1)  # every image 40 times, so the sampling noise averages out
    torch.manual_seed(1)
    bound = importance_weighted_nll(model, images, samples=1).mean().item()
    torch.manual_seed(2)
    loss = evaluate(model, images)
    elbo = reconstruction_nll(model, loss["recon"]) + loss["kl"]
    assert bound == pytest.approx(elbo, rel=2e-3)
    torch.manual_seed(2)
    per_image, recon, kl = negative_elbo(model, images)  # the same draws as evaluate's
    assert per_image.shape == (len(images),) and torch.equal(per_image, recon + kl)
    assert per_image.mean().item() == pytest.approx(elbo, rel=1e-5)


def test_more_importance_samples_tighten_the_bound():
    model = tiny_vae()
    images = tiny_images(64)
    bounds = []
    for samples in (1, 10, 100, 1000):
        torch.manual_seed(0)
        bounds.append(importance_weighted_nll(model, images, samples).mean().item())
    assert bounds == sorted(bounds, reverse=True)  # -log p(x) bounds fall as k grows
    assert bounds[0] - bounds[-1] > 0.1


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("samples_per_chunk", [2048, 16])  # 16: one image per chunk, its 50 samples in 4 steps
def test_bound_is_exact_when_the_decoder_ignores_z(likelihood, samples_per_chunk):
    """If q(z|x) is the prior and p(x|z) does not depend on z, every importance weight is p(x): the estimate is exact."""
    model = tiny_vae(likelihood)
    with torch.no_grad():
        for head in (model.to_latent, model.to_logvar):  # q(z|x) = N(0, I)
            head.weight.zero_()
            head.bias.zero_()
        model.decoder[0].weight.zero_()  # the decoder's hidden layer sees only its bias
    images = tiny_images(8)
    pixels = images.float().div(255).flatten(1)
    logits = model.decode_logits(torch.zeros(1, 2)).expand(8, -1)  # the same for every z
    if likelihood == "bernoulli":
        exact = F.binary_cross_entropy_with_logits(logits, pixels, reduction="none").sum(1)
    else:  # N(x; sigmoid(logits), 1/2) per pixel
        exact = (torch.sigmoid(logits) - pixels).square().sum(1) + 0.5 * 784 * math.log(math.pi)
    torch.manual_seed(0)
    bound = importance_weighted_nll(model, images, 50, samples_per_chunk)
    assert torch.allclose(bound, exact, rtol=1e-5)  # image by image


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_bound_draws_and_weighs_as_torch_distributions_does(likelihood):
    """The bound writes log p(z) - log q(z|x) in closed form from its noise; the same seed must give the same
    estimate as drawing z with torch.distributions.Normal and scoring it with its log_prob."""
    model = tiny_vae(likelihood)
    images = tiny_images(5)
    samples = 30
    torch.manual_seed(3)
    ours = importance_weighted_nll(model, images, samples)
    torch.manual_seed(3)
    with torch.no_grad():
        x = images.float().div(255)
        mu, logvar = model.posterior(x)
        # batch shape (5, k, latent): k draws of each image's q, image by image, as the models draw them
        posterior = torch.distributions.Normal(*(t[:, None].expand(-1, samples, -1) for t in (mu, torch.exp(0.5 * logvar))))
        z = posterior.sample()  # (5, k, latent)
        logits = model.decode_logits(z)  # (5, k, 784)
        pixels = x.flatten(1)[:, None].expand_as(logits)
        if likelihood == "bernoulli":
            log_likelihood = -F.binary_cross_entropy_with_logits(logits, pixels, reduction="none").sum(-1)
        else:
            log_likelihood = torch.distributions.Normal(torch.sigmoid(logits), math.sqrt(0.5)).log_prob(pixels).sum(-1)
        prior = torch.distributions.Normal(0.0, 1.0)
        log_weights = log_likelihood + prior.log_prob(z).sum(-1) - posterior.log_prob(z).sum(-1)  # (5, k)
        expected = math.log(samples) - torch.logsumexp(log_weights, 1)
    assert torch.allclose(ours, expected, rtol=1e-5)


def test_knn_accuracy_on_separated_clusters_and_on_random_labels():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 8, generator=generator) * 20

    def clusters(count):
        labels = torch.arange(count) % 10
        return centres[labels] + torch.randn(count, 8, generator=generator), labels

    (train_codes, train_labels), (test_codes, test_labels) = clusters(3000), clusters(1000)
    assert knn_accuracy(train_codes, train_labels, test_codes, test_labels) == 1.0
    shuffled = train_labels[torch.randperm(len(train_labels), generator=generator)]
    chance = knn_accuracy(train_codes, shuffled, test_codes, test_labels)
    assert 0.05 < chance < 0.15  # ten classes: about 0.1


def test_a_unit_is_active_when_its_mean_varies_more_than_the_threshold():
    codes = torch.cat([torch.randn(1000, 3), torch.randn(1000, 2) * 0.05], 1)  # variances 1, 1, 1, 0.0025, 0.0025
    assert int(units.active(codes.var(0)).sum()) == 3


def test_measure_on_fewer_training_images_than_neighbours():
    from types import SimpleNamespace

    from metrics import NEIGHBOURS, measure

    model = tiny_vae()
    dataset = SimpleNamespace(train_images=tiny_images(3), train_labels=torch.tensor([0, 1, 2]),
                              test_images=tiny_images(4, seed=1), test_labels=torch.tensor([0, 1, 2, 0]))
    metrics, codes = measure(model, "vae", dataset, SimpleNamespace(dataset="mnist", iw_samples=2, binarize="none"))
    assert NEIGHBOURS > 3 and metrics["knn_neighbours"] == 3 and codes.shape == (4, 2)
    assert metrics["knn_accuracy"] in (0, 0.25, 0.5, 0.75, 1)


def test_measure_names_the_data_of_either_model():
    """test.py labels BCE "on grey levels" from this key, so the AE must carry it as well as the VAE."""
    from types import SimpleNamespace

    from metrics import measure
    from model import AutoEncoder

    torch.manual_seed(0)
    dataset = SimpleNamespace(train_images=tiny_images(8), train_labels=torch.arange(8) % 2,
                              test_images=tiny_images(4, seed=1), test_labels=torch.tensor([0, 1, 0, 1]))
    for binarize in ("none", "dynamic"):
        metrics, _ = measure(AutoEncoder(2, 16, likelihood="bernoulli"), "ae", dataset,
                             SimpleNamespace(dataset="mnist", iw_samples=2, binarize=binarize))
        assert metrics["binarize"] == binarize


@pytest.mark.parametrize("beta", [1.0, 0.1, 4.0])
def test_a_gaussian_model_is_scored_as_the_decoder_of_variance_beta_over_2(beta):
    model = tiny_vae("gaussian")
    model.beta = beta
    x, x_hat = torch.rand(3, 784), torch.rand(3, 784)
    exact = -torch.distributions.Normal(x_hat, math.sqrt(beta / 2)).log_prob(x).sum(1)
    assert torch.allclose(reconstruction_nll(model, (x - x_hat).square().sum(1)), exact, rtol=1e-5)
    words, is_likelihood = what_the_nats_are(model, "none")
    assert f"Gaussian decoder with variance {beta / 2:g} per pixel" in words and is_likelihood


def test_binary_cross_entropy_on_grey_levels_is_not_called_a_likelihood():
    model = tiny_vae("bernoulli")
    assert what_the_nats_are(model, "dynamic") == (
        "-log p(x) of binarised pixels under the Bernoulli decoder: a likelihood", True)
    words, is_likelihood = what_the_nats_are(model, "none")
    assert "not a likelihood" in words and not is_likelihood


def test_standard_error_and_kl_per_dimension():
    mean, error = mean_and_standard_error(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and error == pytest.approx(math.sqrt(5 / 3) / 2)
    model = tiny_vae()
    images = tiny_images(32)
    [per_dimension] = kl_per_dimension(model, images)
    mu, logvar = model.posterior(data.to_float(images))
    assert per_dimension.shape == (2,)
    assert per_dimension.sum().item() == pytest.approx(gaussian_kl(mu, logvar).mean().item(), rel=1e-5)
