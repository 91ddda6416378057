"""Active units as Burda et al. count them (units.py): the second layer's statistic against a direct Monte-Carlo
computation, and the removal check, which gives back the full model's bound when nothing is removed and moves by
less than the bound's standard error when a unit whose posterior is its prior is removed."""
import pytest
import torch

import config
import units
from metrics import importance_weighted_nll, kl_per_dimension, mean_and_standard_error, removal_check
from checkpoints import build, model_args


def tiny(layers):
    torch.manual_seed(0)
    values = {**config.defaults(), **(config.BURDA2015 if layers == 1 else config.BURDA2015_TWO_LAYERS),
              "hidden_dims": 16, "latent_dims": 4, "top_latent_dims": 3, "top_hidden_dims": 8}
    return build("vae", model_args(type("Config", (), values))).eval()


GENERATOR = torch.Generator().manual_seed(1)
IMAGES = torch.rand(40, 28, 28, generator=GENERATOR).bernoulli(generator=GENERATOR).mul(255).to(torch.uint8)


def test_the_first_layer_s_activity_is_the_variance_of_q_s_mean():
    model = tiny(1)
    x = IMAGES.float() / 255
    with torch.no_grad():
        direct = model.posterior(x)[0].var(0)
    assert torch.allclose(units.activities(model, IMAGES)[0], direct, atol=1e-6)


def test_the_second_layer_s_activity_averages_q_z2_s_mean_over_z1_drawn_from_q():
    model = tiny(2)
    with torch.no_grad():  # z1's mean far apart across images, and q(z2|z1) bent enough to tell the statistics apart
        model.to_latent.weight.mul_(20)
        model.upper_encoder[0].weight.mul_(3)
    x = IMAGES.float() / 255
    torch.manual_seed(2)
    lower, upper = units.activities(model, IMAGES, samples=4000)
    with torch.no_grad():  # directly: z1 ~ q(z1|x) by torch.distributions, E over z1 of q(z2|z1)'s mean, Var over x
        q_z1 = torch.distributions.Normal(*(lambda mu, logvar: (mu, torch.exp(0.5 * logvar)))(*model.posterior(x)))
        direct = model.upper_posterior(q_z1.sample((4000,)))[0].mean(0).var(0)  # (top,)
        at_the_mean = model.upper_posterior(model.posterior(x)[0])[0].var(0)
    assert torch.allclose(upper, direct, rtol=0.02)
    assert not torch.allclose(upper, at_the_mean, rtol=0.1)  # the statistic the paper did not use
    assert torch.allclose(lower, model.posterior(x)[0].detach().var(0), atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_removing_nothing_gives_the_full_model_s_bound(layers):
    model = tiny(layers)
    keep = [torch.ones(4, dtype=torch.bool)] + ([torch.ones(3, dtype=torch.bool)] if layers == 2 else [])
    torch.manual_seed(3)
    full = importance_weighted_nll(model, IMAGES, 20)
    torch.manual_seed(3)
    assert torch.equal(importance_weighted_nll(units.without_units(model, keep), IMAGES, 20), full)
    assert removal_check(model, IMAGES, 20, keep, full)["removal_difference_nats"] == 0


def make_unit_its_prior(model, layers):
    """Unit 0 of z (of z1 and of z2 with two layers): q's mean 0 and log-variance 0 whatever the input (its prior,
    N(0, 1)), and no network reads it."""
    with torch.no_grad():
        pairs = [(model.to_latent, model.to_logvar)] + ([(model.to_top_latent, model.to_top_logvar),
                                                         (model.to_prior_mean, model.to_prior_logvar)] if layers == 2 else [])
        for pair in pairs:
            for layer in pair:
                layer.weight[0], layer.bias[0] = 0, 0
        for reader in [model.decoder[0]] + ([model.upper_encoder[0], model.upper_decoder[0]] if layers == 2 else []):
            reader.weight[:, 0] = 0


@pytest.mark.parametrize("layers", [1, 2])
def test_removing_a_unit_whose_posterior_is_its_prior_moves_the_bound_less_than_its_standard_error(layers):
    model = tiny(layers)
    make_unit_its_prior(model, layers)
    keep = [torch.arange(4) > 0] + ([torch.arange(3) > 0] if layers == 2 else [])
    pruned = units.without_units(model, keep)
    assert pruned.latent_dims == 3 and pruned.code_dims == (2 if layers == 2 else 3)
    torch.manual_seed(4)
    full = importance_weighted_nll(model, IMAGES, 50)
    checked = removal_check(model, IMAGES, 50, keep, full)
    assert checked["units_removed"] == ([1, 1] if layers == 2 else [1])
    assert abs(checked["removal_difference_nats"]) < mean_and_standard_error(full)[1]
    assert units.activities(model, IMAGES)[0][0] == 0  # and the unit counts as inactive


def relay_through_z2(model, unit=0, carrier=1, scale=1e-3):
    """Make z1[unit]'s posterior N(a(x), 1) and its prior p(z1[unit] | z2) = N(z2[0], 1), where z2[0] copies
    z1[carrier] ~ N(a(x), e^-20): the unit varies with x but its posterior is its prior's. Each tanh stack passes the
    value through its first hidden unit, scaled down by `scale` (where tanh is the identity) and back up after."""
    with torch.no_grad():
        model.to_latent.weight[unit].mul_(20)
        model.to_latent.weight[carrier] = model.to_latent.weight[unit]
        model.to_latent.bias[carrier] = model.to_latent.bias[unit]
        for layer, bias in ((model.to_logvar, {unit: 0.0, carrier: -20.0}), (model.to_top_logvar, {0: -20.0}),
                            (model.to_prior_logvar, {unit: 0.0})):
            for row, value in bias.items():
                layer.weight[row], layer.bias[row] = 0, value
        for stack, source, out, row in ((model.upper_encoder, carrier, model.to_top_latent, 0),
                                        (model.upper_decoder, 0, model.to_prior_mean, unit)):
            linears = [layer for layer in stack if isinstance(layer, torch.nn.Linear)]
            for index, layer in enumerate(linears):
                layer.weight[0], layer.bias[0] = 0, 0
                layer.weight[0, source if index == 0 else 0] = scale if index == 0 else 1
            out.weight[row], out.bias[row] = 0, 0
            out.weight[row, 0] = 1 / scale


def test_a_z1_unit_that_relays_z2_is_active_by_its_variance_and_inactive_by_its_kl():
    model = tiny(2)
    relay_through_z2(model)
    x = IMAGES.float() / 255
    torch.manual_seed(4)
    activity = units.activities(model, IMAGES)[0]
    kl = kl_per_dimension(model, IMAGES)[0]
    assert activity[0] > 100 * units.THRESHOLD  # its mean follows x
    assert kl[0] < units.KL_THRESHOLD / 10  # and its posterior is its prior
    assert not units.active(kl, units.KL_THRESHOLD)[0] and units.active(activity)[0]
    with torch.no_grad():  # directly, by torch.distributions: z1 ~ q(z1|x), z2 ~ q(z2|z1), then the unit's log ratio
        mu1, logvar1 = model.posterior(x)
        q1 = torch.distributions.Normal(mu1, torch.exp(0.5 * logvar1))
        z1 = q1.sample((1000,))  # (1000, B, latent)
        mu2, logvar2 = model.upper_posterior(z1)
        z2 = torch.distributions.Normal(mu2, torch.exp(0.5 * logvar2)).sample()
        prior_mean, prior_logvar = model.prior_of_z1(z2)
        prior = torch.distributions.Normal(prior_mean, torch.exp(0.5 * prior_logvar))
        direct = (q1.log_prob(z1) - prior.log_prob(z1)).mean((0, 1))  # (latent,)
    assert direct[0] == pytest.approx(0, abs=units.KL_THRESHOLD / 10)
    # The model samples each image once: averaged over 400 passes, every unit's KL is the direct one.
    averaged = sum(kl_per_dimension(model, IMAGES)[0] for _ in range(400)) / 400
    assert torch.allclose(averaged, direct, rtol=0.05, atol=0.01)
