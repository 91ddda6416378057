"""Active units as Burda et al. count them (units.py): the second layer's statistic against a direct Monte-Carlo
computation, and the removal check, which gives back the full model's bound when nothing is removed and moves by
less than the bound's standard error when a unit whose posterior is its prior is removed."""
import pytest
import torch

import config
import units
from metrics import importance_weighted_nll, mean_and_standard_error, removal_check
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
