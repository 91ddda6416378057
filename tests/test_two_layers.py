"""The VAE with two stochastic layers (Burda et al. 2015, Appendix C): its log weights, bounds and DReG gradient
against direct computations with torch.distributions and torch.func for the same noise."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

import checkpoints
import config
from loop import make_optimizer
from metrics import importance_weighted_nll, kl_per_dimension
from checkpoints import build, model_args
from model import PIXELS
from two_layers import TwoLayerVAE

BATCH = 5
ENCODERS = ("encoder.", "to_latent.", "to_logvar.", "upper_encoder.", "to_top_latent.", "to_top_logvar.")


def two_layer_vae(seed=0, **args):
    torch.manual_seed(seed)
    return TwoLayerVAE(latent_dims=4, hidden_dims=16, hidden_layers=2, activation="tanh", likelihood="bernoulli",
                       top_latent_dims=3, top_hidden_dims=8, **args)


def binary_images(count=BATCH, seed=1):
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


def noise_as_drawn(model, x, k, seed, dtype=torch.float32):
    """(noise of z1 (B, k, latent), noise of z2 (B, k, top)): what log_weights draws after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return torch.randn(len(x), k, model.latent_dims, dtype=dtype), torch.randn(len(x), k, model.code_dims, dtype=dtype)


def direct_log_weights(model, x, noise1, noise2, weights=None, held=None):
    """log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1), (B, k), from torch.distributions.
    weights: the model's parameters by name (torch.func); held: the encoders' parameters to read inside log q."""
    weights = weights or dict(model.named_parameters())
    held = held or weights

    def net(prefix, inputs, params):
        return torch.func.functional_call(getattr(model, prefix), {name[len(prefix) + 1:]: value for name, value in
                                                                   params.items() if name.startswith(prefix + ".")},
                                          (inputs,))

    def q1(params):
        hidden = net("encoder", x, params)
        return Normal(net("to_latent", hidden, params)[:, None], net("to_logvar", hidden, params).mul(0.5).exp()[:, None])

    def q2(params, z1):
        hidden = net("upper_encoder", z1, params)
        return Normal(net("to_top_latent", hidden, params), net("to_top_logvar", hidden, params).mul(0.5).exp())

    z1 = q1(weights).loc + q1(weights).scale * noise1  # (B, k, latent)
    z2 = q2(weights, z1).loc + q2(weights, z1).scale * noise2  # (B, k, top)
    prior_hidden = net("upper_decoder", z2, weights)
    p1 = Normal(net("to_prior_mean", prior_hidden, weights), net("to_prior_logvar", prior_hidden, weights).mul(0.5).exp())
    pixels = Bernoulli(logits=net("decoder", z1, weights)).log_prob(x.flatten(1)[:, None]).sum(-1)
    return (pixels + p1.log_prob(z1).sum(-1) + Normal(0.0, 1.0).log_prob(z2).sum(-1)
            - q1(held).log_prob(z1).sum(-1) - q2(held, z1).log_prob(z2).sum(-1))


def test_the_iwae_with_one_sample_is_minus_log_w_of_that_sample():
    model, x = two_layer_vae(objective="iwae", k=1), binary_images()
    torch.manual_seed(3)
    loss, _, _ = model(x)
    expected = -direct_log_weights(model, x, *noise_as_drawn(model, x, 1, seed=3))[:, 0]
    assert torch.allclose(loss * PIXELS, expected.mean(), rtol=1e-5)


def test_the_bound_is_log_mean_weight_and_at_most_each_images_elbo():
    model, x = two_layer_vae(objective="iwae", k=6), binary_images()
    torch.manual_seed(5)
    drawn = model.log_weights(x, 6)
    log_weights = drawn.latent - drawn.recon
    direct = direct_log_weights(model, x, *noise_as_drawn(model, x, 6, seed=5))
    assert torch.allclose(log_weights, direct, atol=1e-3)
    torch.manual_seed(5)
    loss, _, _ = model(x)
    bound = torch.logsumexp(direct, 1) - math.log(6)  # log (1/k) sum_i w_i, (B,)
    assert torch.allclose(loss * PIXELS, -bound.mean(), rtol=1e-5)
    assert (bound >= direct.mean(1) - 1e-4).all()  # Jensen: above the k samples' ELBO, image by image


def gradients(model, x, seed):
    model.zero_grad()
    torch.manual_seed(seed)
    loss, _, _ = model(x)
    loss.backward()
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("estimator, power", [("dreg", 2), ("stl", 1)])
def test_the_dreg_and_stl_encoder_gradients_are_the_hierarchys_formulas_computed_directly(estimator, power):
    """-sum_i w~_i^power log w_i with w~ held and the encoders' weights detached inside log q (z1 live where it feeds
    q(z2|z1) and p(z1|z2)): DReG's with w~_i^2, sticking the landing's with w~_i; differentiated with torch.func,
    float64, against the model's loss.backward()."""
    x = binary_images(count=3).double()
    model = two_layer_vae(objective="iwae", k=4, estimator=estimator).double()
    as_trained = gradients(model, x, seed=7)
    weights = dict(model.named_parameters())
    held = {name: value.detach() if name.startswith(ENCODERS) else value for name, value in weights.items()}
    log_weights = direct_log_weights(model, x, *noise_as_drawn(model, x, 4, seed=7, dtype=torch.float64), weights,
                                     held)
    normalised = torch.softmax(log_weights.detach(), -1)
    surrogate = -(normalised.pow(power) * log_weights).sum() / (len(x) * PIXELS)
    encoder = {name: value for name, value in weights.items() if name.startswith(ENCODERS)}
    for name, gradient in zip(encoder, torch.autograd.grad(surrogate, list(encoder.values()))):
        assert torch.allclose(as_trained[name], gradient, rtol=0, atol=1e-10), name


def test_dreg_leaves_the_loss_and_the_decoders_gradients_exactly_as_they_were():
    x = binary_images()
    standard, dreg = two_layer_vae(objective="iwae", k=5), two_layer_vae(objective="iwae", k=5, estimator="dreg")
    standard_grads, dreg_grads = gradients(standard, x, seed=4), gradients(dreg, x, seed=4)
    decoders = [name for name in standard_grads if not name.startswith(ENCODERS)]
    assert len(decoders) == 14 and all(torch.equal(standard_grads[name], dreg_grads[name]) for name in decoders)
    assert not torch.allclose(standard_grads["to_top_logvar.weight"], dreg_grads["to_top_logvar.weight"])
    torch.manual_seed(4)
    standard_loss = standard(x)[0]
    torch.manual_seed(4)
    assert torch.equal(standard_loss, dreg(x)[0])


def test_dreg_estimates_the_same_encoder_gradient_with_less_variance():
    x = binary_images(count=2)

    def encoder_gradients(model, draws=300):
        return torch.stack([torch.cat([grad.flatten() for name, grad in gradients(model, x, seed).items()
                                       if name.startswith(ENCODERS)]) for seed in range(draws)])

    standard = encoder_gradients(two_layer_vae(objective="iwae", k=10))
    dreg = encoder_gradients(two_layer_vae(objective="iwae", k=10, estimator="dreg"))
    standard_error = ((standard.var(0) + dreg.var(0)) / len(standard)).sqrt()
    assert ((standard.mean(0) - dreg.mean(0)).abs() <= 5 * standard_error + 1e-6).all()
    assert dreg.var(0).sum() < 0.5 * standard.var(0).sum()


def test_the_bound_of_a_checkpoint_is_an_independent_loop_over_its_layers_weights(tmp_path):
    cfg, _ = config.parse(tuple(config.defaults()), ["--ckpt-dir", str(tmp_path), "--model", "vae",
                                                     "--stochastic-layers", "2", "--latent-dims", "4",
                                                     "--top-latent-dims", "3", "--hidden-dims", "16",
                                                     "--top-hidden-dims", "8", "--hidden-layers", "2",
                                                     "--activation", "tanh", "--likelihood", "bernoulli"])
    torch.manual_seed(0)
    trained = build("vae", model_args(cfg))
    checkpoints.save(cfg, "vae", trained, make_optimizer(trained, 1e-3, torch.device("cpu")), [])
    model, _, _ = checkpoints.load(cfg, "vae", {}, torch.device("cpu"))
    assert isinstance(model, TwoLayerVAE)
    images, samples = (binary_images(count=7, seed=2) * 255).to(torch.uint8)[:, 0], 50
    torch.manual_seed(11)
    bound = importance_weighted_nll(model, images, samples, samples_per_chunk=100)  # 2 images a chunk

    w = {name: value.detach() for name, value in model.state_dict().items()}

    def mlp(prefix, first, inputs):  # the layers' own weights, read by name: Linear, tanh, Linear, tanh
        for index in (first, first + 2):
            inputs = torch.tanh(F.linear(inputs, w[f"{prefix}.{index}.weight"], w[f"{prefix}.{index}.bias"]))
        return inputs

    def gaussian(prefix_mean, prefix_logvar, hidden):
        return Normal(F.linear(hidden, w[f"{prefix_mean}.weight"], w[f"{prefix_mean}.bias"]),
                      F.linear(hidden, w[f"{prefix_logvar}.weight"], w[f"{prefix_logvar}.bias"]).mul(0.5).exp())

    torch.manual_seed(11)
    expected = []
    for start in range(0, len(images), 2):
        x = images[start : start + 2].flatten(1).float() / 255
        noise1, noise2 = torch.randn(len(x), samples, 4), torch.randn(len(x), samples, 3)
        q1 = gaussian("to_latent", "to_logvar", mlp("encoder", 1, x))
        z1 = q1.loc[:, None] + q1.scale[:, None] * noise1
        q2 = gaussian("to_top_latent", "to_top_logvar", mlp("upper_encoder", 0, z1))
        z2 = q2.loc + q2.scale * noise2
        p1 = gaussian("to_prior_mean", "to_prior_logvar", mlp("upper_decoder", 0, z2))
        logits = F.linear(mlp("decoder", 0, z1), w["decoder.4.weight"], w["decoder.4.bias"])
        log_weights = (Bernoulli(logits=logits).log_prob(x[:, None]).sum(-1) + p1.log_prob(z1).sum(-1)
                       + Normal(0.0, 1.0).log_prob(z2).sum(-1) - Normal(q1.loc[:, None], q1.scale[:, None]).log_prob(z1).sum(-1)
                       - q2.log_prob(z2).sum(-1))
        expected.append(math.log(samples) - torch.logsumexp(log_weights, 1))
    assert torch.allclose(bound, torch.cat(expected), atol=2e-3)


def test_the_one_layer_vae_is_built_as_before():
    cfg, _ = config.parse(tuple(config.defaults()), ["--model", "vae"])
    assert type(build("vae", model_args(cfg))).__name__ == "KSampleVAE"
    with pytest.raises(AttributeError):
        build("vae", model_args(cfg)).upper_encoder


def test_the_kl_per_dimension_of_each_layer_is_its_sampled_and_closed_form_kl():
    model = two_layer_vae()
    images = (binary_images(count=6, seed=3) * 255).to(torch.uint8)[:, 0]
    torch.manual_seed(5)
    lower, upper = kl_per_dimension(model, images, batch_size=4)  # two batches: 4 images, then 2
    assert (lower.shape, upper.shape) == ((4,), (3,))

    def gaussian(mean_layer, logvar_layer, hidden):
        return Normal(mean_layer(hidden), logvar_layer(hidden).mul(0.5).exp())

    torch.manual_seed(5)
    expected_lower, expected_upper = [], []
    with torch.no_grad():
        for x in (images[:4], images[4:]):
            x = x.float() / 255
            q1 = gaussian(model.to_latent, model.to_logvar, model.encoder(x))
            z1 = q1.loc + q1.scale * torch.randn(len(x), 4)
            q2 = gaussian(model.to_top_latent, model.to_top_logvar, model.upper_encoder(z1))
            z2 = q2.loc + q2.scale * torch.randn(len(x), 3)
            p1 = gaussian(model.to_prior_mean, model.to_prior_logvar, model.upper_decoder(z2))
            expected_lower.append(q1.log_prob(z1) - p1.log_prob(z1))  # (B, 4): sampled, per dimension
            expected_upper.append(kl_divergence(q2, Normal(0.0, 1.0)))  # (B, 3): closed form given z1
    assert torch.allclose(lower, torch.cat(expected_lower).mean(0), atol=1e-5)
    assert torch.allclose(upper, torch.cat(expected_upper).mean(0), atol=1e-6)
