import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from checkpoints import build, model_args
from config import MODEL_ARGS
from literature import initialise
from model import PIXELS, AutoEncoder, VariationalAutoEncoder, gaussian_kl


def images(count=16, seed=0):
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_class", [AutoEncoder, VariationalAutoEncoder])
@pytest.mark.parametrize("latent_dims", [1, 2, 8])
def test_shapes(model_class, latent_dims):
    torch.manual_seed(0)
    model = model_class(latent_dims=latent_dims, hidden_dims=32)
    x = images(5)
    assert model.encode(x).shape == (5, latent_dims)
    assert model.encode(x[:, 0]).shape == (5, latent_dims)  # (B, 28, 28) works too, as batches come
    decoded = model.decode(torch.randn(7, latent_dims))
    assert decoded.shape == (7, 1, 28, 28)
    assert 0 <= decoded.min() and decoded.max() <= 1
    loss, recon, kl = model(x)
    assert loss.shape == () and recon.shape == (5,) and kl.shape == (5,)


def test_ae_loss_is_per_pixel_mse():
    torch.manual_seed(0)
    model = AutoEncoder(latent_dims=2, hidden_dims=64)
    x = images()
    loss, _, kl = model(x)
    assert torch.allclose(loss, F.mse_loss(model.decode(model.encode(x)), x), rtol=1e-5)
    assert torch.equal(kl, torch.zeros(16))


def test_vae_loss_matches_the_reference_formula():
    """per-pixel MSE + KL averaged over batch and latent dims, times latent_dims / 784."""
    torch.manual_seed(0)
    latent_dims = 4
    model = VariationalAutoEncoder(latent_dims=latent_dims, hidden_dims=64)
    x = images()
    torch.manual_seed(1)
    loss, _, _ = model(x)

    mu, logvar = model.posterior(x)
    torch.manual_seed(1)  # the same noise as the forward pass drew
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    mse = F.mse_loss(model.decode(z), x)
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()
    assert torch.allclose(loss, mse + kl * latent_dims / 784, rtol=1e-5)


def test_closed_form_kl_agrees_with_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5) * 0.5
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(200_000, 3, 5)  # (S, 3, 5) samples from q
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(0)  # (3,)
    assert torch.allclose(gaussian_kl(mu, logvar), monte_carlo, atol=0.03)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_bernoulli_loss_is_summed_binary_cross_entropy():
    torch.manual_seed(0)
    model = AutoEncoder(latent_dims=2, hidden_dims=64, likelihood="bernoulli")
    x = images()
    loss, recon, _ = model(x)
    expected = F.binary_cross_entropy(model.decode(model.encode(x)), x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(recon, expected, rtol=1e-4)
    assert torch.allclose(loss, expected.mean() / PIXELS, rtol=1e-4)


@pytest.mark.parametrize("binary", [True, False])
def test_binary_cross_entropy_and_its_gradient_are_torchs(binary):
    """model.binary_cross_entropy is written for speed; it must agree with torch's own, far into the tails too."""
    from speed import binary_cross_entropy
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, PIXELS, generator=generator) * 10
    logits[0, :4] = torch.tensor([1000.0, -1000.0, 88.0, -104.0])  # where exp over- or underflows
    logits.requires_grad_()
    x = torch.rand(6, PIXELS, generator=generator)
    x = (x < 0.3).float() if binary else x
    weights = torch.randn(6, generator=generator)
    ours = binary_cross_entropy(logits, x)
    torchs = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    assert torch.allclose(ours, torchs, rtol=1e-6)
    assert torch.allclose(*(torch.autograd.grad((loss * weights).sum(), logits)[0] for loss in (ours, torchs)))
    samples = torch.randn(6, 3, PIXELS, generator=generator)  # k = 3 samples of each image, as the bound scores
    assert torch.allclose(binary_cross_entropy(samples, x[:, None]),
                          F.binary_cross_entropy_with_logits(samples, x[:, None].expand_as(samples),
                                                             reduction="none").sum(-1), rtol=1e-6)


def test_beta_scales_only_the_kl_term():
    torch.manual_seed(0)
    model = VariationalAutoEncoder(latent_dims=3, hidden_dims=64)
    x = images()
    results = {}
    for beta in (1.0, 4.0):
        model.beta = beta
        torch.manual_seed(1)
        results[beta] = model(x)
    (loss_1, recon_1, kl_1), (loss_4, recon_4, kl_4) = results[1.0], results[4.0]
    assert torch.equal(recon_1, recon_4) and torch.equal(kl_1, kl_4)
    assert torch.allclose(loss_4 - loss_1, 3 * kl_1.mean() / PIXELS, rtol=1e-4)
    assert not math.isclose(loss_1.item(), loss_4.item())


@pytest.mark.parametrize("model_class", [AutoEncoder, VariationalAutoEncoder])
def test_decode_is_the_sigmoid_of_decode_logits(model_class):
    torch.manual_seed(0)
    model = model_class(latent_dims=3, hidden_dims=32)
    z = torch.randn(6, 3)
    logits = model.decode_logits(z)
    assert logits.shape == (6, PIXELS) and (logits < 0).any()  # logits, not probabilities
    assert torch.equal(model.decode(z), torch.sigmoid(logits).view(6, 1, 28, 28))


def test_model_args_are_the_constructors_arguments_and_rebuild_the_same_network():
    assert MODEL_ARGS == ("latent_dims", "hidden_dims", "hidden_layers", "activation", "likelihood", "beta", "objective",
                          "k", "estimator", "stochastic_layers", "top_latent_dims", "top_hidden_dims")
    cfg = SimpleNamespace(latent_dims=3, hidden_dims=24, hidden_layers=1, activation="relu", likelihood="bernoulli",
                          beta=2.0, objective="elbo", k=3, estimator="standard", stochastic_layers=1, top_latent_dims=2,
                          top_hidden_dims=5, epochs=7)
    assert model_args(cfg) == {"latent_dims": 3, "hidden_dims": 24, "hidden_layers": 1, "activation": "relu",
                               "likelihood": "bernoulli", "beta": 2.0, "objective": "elbo", "k": 3,
                               "estimator": "standard", "stochastic_layers": 1, "top_latent_dims": 2,
                               "top_hidden_dims": 5}
    autoencoder, vae = build("ae", model_args(cfg)), build("vae", model_args(cfg))
    assert (vae.latent_dims, vae.likelihood, vae.beta, vae.k) == (3, "bernoulli", 2.0, 3)
    assert autoencoder.to_latent.weight.shape == vae.to_latent.weight.shape == vae.to_logvar.weight.shape == (3, 24)
    # Each model takes only its own arguments: the AE draws no samples and weighs no KL.
    assert not any(hasattr(autoencoder, key) for key in ("beta", "k", "objective", "estimator"))


def test_depth_and_activation_make_burdas_784_200_200_50_network():
    model = VariationalAutoEncoder(latent_dims=50, hidden_dims=200, hidden_layers=2, activation="tanh")
    linears = [(module.in_features, module.out_features) for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert linears == [(784, 200), (200, 200), (200, 50), (50, 200), (200, 200), (200, 784), (200, 50)]
    assert all(isinstance(module, torch.nn.Tanh) for module in (model.encoder[2], model.encoder[4], model.decoder[1]))
    assert not any(isinstance(module, torch.nn.ReLU) for module in model.modules())


def test_one_relu_layer_keeps_the_reference_designs_layout():
    """The default network's parameter names, and so every earlier checkpoint, are unchanged by the depth option."""
    names = list(VariationalAutoEncoder().state_dict())
    assert names == ["encoder.1.weight", "encoder.1.bias", "to_latent.weight", "to_latent.bias", "decoder.0.weight",
                     "decoder.0.bias", "decoder.2.weight", "decoder.2.bias", "to_logvar.weight", "to_logvar.bias"]


def test_glorot_draws_each_weight_within_its_bound_and_zeroes_the_biases():
    torch.manual_seed(0)
    model = VariationalAutoEncoder(latent_dims=50, hidden_dims=200, hidden_layers=2, activation="tanh")
    initialise(model, "glorot", torch.zeros(3, 28, 28, dtype=torch.uint8))
    for layer in [module for module in model.modules() if isinstance(module, torch.nn.Linear)]:
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.95 * bound  # the whole interval is used: wider than torch's own draw
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_glorot_mean_sets_the_decoders_output_bias_to_the_logit_of_the_training_mean():
    torch.manual_seed(0)
    train_images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    train_images[:, 0, :3] = torch.tensor([0, 255, 51], dtype=torch.uint8)  # pixels always 0, always 1, 0.2
    model = VariationalAutoEncoder(latent_dims=4, hidden_dims=16, likelihood="bernoulli")
    initialise(model, "glorot-mean", train_images)
    mean = train_images.double().div(255).mean(0).flatten()
    bias = model.decoder[-1].bias.double()
    assert torch.allclose(bias, torch.log(mean.clamp(1e-3, 1 - 1e-3) / (1 - mean.clamp(1e-3, 1 - 1e-3))), atol=1e-5)
    assert bias[:3].tolist() == pytest.approx([math.log(1e-3 / 0.999), math.log(0.999 / 1e-3), math.log(0.2 / 0.8)],
                                              rel=1e-5)
    assert torch.equal(model.encoder[1].bias, torch.zeros(16))  # the other biases stay Glorot's zeros
    # The untrained model's decoder, fed codes that reach its last layer as zeros, draws the average image.
    assert torch.allclose(torch.sigmoid(model.decoder[-1](torch.zeros(1, 16)))[0].double(), mean.clamp(1e-3, 0.999),
                          atol=1e-6)


def test_the_torch_scheme_leaves_the_built_weights_as_they_are():
    torch.manual_seed(0)
    model = VariationalAutoEncoder(latent_dims=4, hidden_dims=16)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    state = torch.get_rng_state()
    initialise(model, "torch", torch.full((5, 28, 28), 128, dtype=torch.uint8))
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state)  # draws nothing: what follows is drawn as before the flag
