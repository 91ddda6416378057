"""The hand-written step: how little an eager PyTorch training step of the VAE can cost: the ELBO with one sample, its forward and
backward passes written out by hand with no autograd and few temporaries, the gradients into one flat tensor and one
fused Adam pass over it. It does the project's work (the same layers, binarisation, noise, loss and update) in far
fewer calls into torch; what it spends beyond the floor (c) is work the floor does not count (biases, activations,
the loss and its gradient, random numbers) and the cost of the calls themselves.
handwritten_bound is the same for the importance-weighted bound (metrics.importance_weighted_nll).
"""
import math

import torch

import data
from benchmarks.works import flat_adam, flat_views, linear_layers
from metrics import SAMPLES_PER_CHUNK
from model import PIXELS, gaussian_kl


def activate_(pre_activation, activation):
    """The model's activation in place: tanh as 2 sigmoid(2x) - 1 (tanh to float rounding), or ReLU."""
    if activation == "tanh":
        return pre_activation.mul_(2).sigmoid_().mul_(2).sub_(1)
    return pre_activation.clamp_min_(0)


def activation_grad_(grad, output, activation):
    """grad (d loss / d output) -> d loss / d input of the activation, in place, from its output."""
    if activation == "tanh":
        return grad.mul_(1 - output.square())
    return grad.mul_(output > 0)


def handwritten_step(model, activation, learning_rate):
    """(step, weights, grads): step(x) is one training step of `model` (a VariationalAutoEncoder trained on the ELBO
    with k = 1) on images x (B, 784), returning the loss. The model's parameters are copied into flat_adam's buffer
    and trained there; weights and grads map each parameter to its view in the flat weights and gradients."""
    flat_weights, flat_grads, adam_step = flat_adam(model, learning_rate)
    weights, grads = flat_views(model, flat_weights), flat_views(model, flat_grads)
    encoder, decoder = linear_layers(model.encoder), linear_layers(model.decoder)
    heads = (model.to_latent, model.to_logvar)
    bernoulli, beta, latent = model.likelihood == "bernoulli", model.beta, model.latent_dims

    def linear(layer, inputs):  # (B, in) -> (B, out)
        return torch.addmm(weights[layer.bias], inputs, weights[layer.weight].T)

    def linear_backward(layer, inputs, output_grad, input_grad=True):
        """Writes the layer's weight and bias gradients; returns d loss / d inputs (B, in) if asked."""
        torch.mm(output_grad.T, inputs, out=grads[layer.weight])
        torch.sum(output_grad, 0, out=grads[layer.bias])
        return torch.mm(output_grad, weights[layer.weight]) if input_grad else None

    def step(x):
        scale = 1 / (len(x) * PIXELS)  # the loss is the batch's mean of (recon + beta KL) / 784
        encoder_inputs = [x]
        for layer in encoder:
            encoder_inputs.append(activate_(linear(layer, encoder_inputs[-1]), activation))
        hidden = encoder_inputs.pop()  # (B, hidden)
        mu, logvar = linear(heads[0], hidden), linear(heads[1], hidden)  # (B, latent) each
        std = logvar.mul(0.5).exp_()
        noise = torch.randn(len(x), latent, device=x.device)
        z = torch.addcmul(mu, std, noise)
        decoder_inputs = [z]
        for layer in decoder[:-1]:
            decoder_inputs.append(activate_(linear(layer, decoder_inputs[-1]), activation))
        logits = linear(decoder[-1], decoder_inputs[-1])  # (B, 784)
        recon, kl = model.reconstruction_loss(logits, x).sum(), gaussian_kl(mu, logvar).sum()
        # Backward: d loss / d logits is sigmoid(l) - x for the Bernoulli, 2 (s - x) s (1 - s) for the squared error.
        probabilities = torch.sigmoid(logits)
        grad = probabilities - x
        if not bernoulli:
            grad.mul_(probabilities * (1 - probabilities) * 2)
        grad.mul_(scale)
        for layer, inputs in zip(reversed(decoder), reversed(decoder_inputs)):
            grad = linear_backward(layer, inputs, grad)
            if inputs is not z:
                grad = activation_grad_(grad, inputs, activation)
        # z = mu + std * noise; KL's gradients: mu in mu, (exp(logvar) - 1) / 2 in logvar.
        mu_grad = grad.add(mu, alpha=beta * scale)
        logvar_grad = grad.mul_(noise).mul_(std).mul_(0.5).add_(std.square().sub_(1), alpha=0.5 * beta * scale)
        grad = linear_backward(heads[0], hidden, mu_grad)
        grad.add_(linear_backward(heads[1], hidden, logvar_grad))
        for layer, inputs in zip(reversed(encoder), reversed(encoder_inputs)):
            grad = activation_grad_(grad, hidden, activation)
            grad = linear_backward(layer, inputs, grad, input_grad=inputs is not x)
            hidden = inputs
        adam_step()
        return (recon + beta * kl) * scale

    return step, weights, grads


def handwritten_loop(model, activation, learning_rate, images, batch_size, resample):
    """The hand-written step as a work to time: one epoch of handwritten_step over `images`, batches cut as train.py cuts them."""
    step, _, _ = handwritten_step(model, activation, learning_rate)

    def epoch():
        total = torch.zeros((), device=images.device)
        for x in data.batches(images, batch_size, shuffle=True, resample=resample):  # x: (B, 28, 28)
            total += step(x.view(len(x), PIXELS)) * len(x)
        return total.item()

    for x in data.batches(images[: 20 * batch_size], batch_size, shuffle=True, resample=resample):  # warm-up
        step(x.view(len(x), PIXELS))
    return epoch


def handwritten_bound(model, activation, images, samples, samples_per_chunk=SAMPLES_PER_CHUNK):
    """The hand-written bound: a work returning metrics.importance_weighted_nll of a Bernoulli decoder's `model` on
    `images` (the same noise, the same arithmetic to float rounding), one image at a time, its temporaries reused
    in place and the binary cross-entropy's x-weighted sum as one matrix-vector product."""
    layers = linear_layers(model.decoder)

    @torch.inference_mode()
    def bound():
        bounds = []
        for x in data.batches(images, 1, shuffle=False):  # x: (1, 28, 28)
            mu, logvar = model.posterior(x)  # (1, latent) each
            std, half_minus_x = torch.exp(0.5 * logvar), 0.5 - x.view(PIXELS)
            log_weights = []
            for start in range(0, samples, samples_per_chunk):
                rows = min(samples_per_chunk, samples - start)
                noise = torch.randn(rows, model.latent_dims, device=x.device)
                z = torch.addcmul(mu, std, noise)  # (rows, latent)
                hidden = z
                for layer in layers[:-1]:
                    hidden = activate_(layer(hidden), activation)
                logits = layers[-1](hidden)  # (rows, 784)
                # speed.binary_cross_entropy's formula, |l| / 2 + l (1/2 - x) - log sigmoid(|l|), in place
                recon = torch.mv(logits, half_minus_x)
                magnitude = logits.abs_()
                recon.add_(magnitude.sum(-1), alpha=0.5)
                recon.sub_(magnitude.sigmoid_().view(rows, -1, 98).prod(-1).log_().sum(-1))
                kl = z.square_().sub_(noise.square_()).sum(-1).mul_(0.5).sub_(0.5 * logvar.sum())  # sampled_kl's
                log_weights.append(recon.add_(kl).neg_())
            bounds.append(math.log(samples) - torch.logsumexp(torch.cat(log_weights), 0))
        return torch.stack(bounds)

    return bound
