"""The numbers test.py reports (and train.py's per-epoch test loss): the loss pass, latent codes, reconstruction
errors, the importance-weighted bound on -log p(x), active units and k-NN accuracy of the codes."""
import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

import data
import units
from model import TwoLayerVAE
from objectives import (PIXELS, binary_cross_entropy, decoder_variance, gaussian_log_density_per_dimension,
                        log_likelihood, reconstruction_nll, sampled_kl, squared_error, twice_kl_per_dimension)

EVAL_BATCH_SIZE = 2000  # large: evaluation keeps no activations for a backward pass
SAMPLES_PER_CHUNK = 2048  # decoded importance samples at once: few enough that their logits stay in cache
NEIGHBOURS = 5  # k of the k-nearest-neighbour classifier on latent codes


@torch.inference_mode()
def evaluate(model, images, batch_size=EVAL_BATCH_SIZE):
    """Test loss as trained (averaged per image over all of `images`) and its parts, recon and KL, per image."""
    totals = torch.zeros(3, device=images.device)
    for x in data.batches(images, batch_size, shuffle=False):
        loss, recon, kl = model(x)
        totals += torch.stack([loss * len(x), recon.sum(), kl.sum()])
    loss, recon, kl = (totals / len(images)).tolist()  # the one host sync of the evaluation
    return {"loss": loss, "recon": recon, "kl": kl}


@torch.inference_mode()
def encode_all(model, images, batch_size=EVAL_BATCH_SIZE):
    """Latent codes (N, code_dims) of all images: the posterior mean for the VAE (with two stochastic layers, of z2
    at the mean of z1)."""
    return torch.cat([model.encode(x) for x in data.batches(images, batch_size, shuffle=False)])


@torch.inference_mode()
def reconstruction_errors(model, codes, images, batch_size=EVAL_BATCH_SIZE):
    """(MSE per pixel, binary cross-entropy in nats per image) of the images decoded from their codes.

    With codes from encode_all (the VAE's posterior means) these are deterministic for both models.
    """
    totals = torch.zeros(2, device=images.device)
    for start, x in zip(range(0, len(images), batch_size), data.batches(images, batch_size, shuffle=False)):
        logits, x = model.decode_logits(codes[start : start + batch_size]), x.flatten(1)  # (B, 784) each
        totals += torch.stack([squared_error(logits, x).sum() / PIXELS, binary_cross_entropy(logits, x).sum()])
    mse, bce = (totals / len(images)).tolist()
    return mse, bce


@torch.inference_mode()
def importance_weighted_nll(model, images, samples, samples_per_chunk=SAMPLES_PER_CHUNK):
    """The importance-weighted upper bound on -log p(x) (Burda et al. 2015), in nats, per image: (N,).

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x): with k = 1 this is the ELBO,
    and the bound tightens as k grows. Images and samples are cut into chunks so memory stays bounded.
    """
    images_per_chunk = max(1, samples_per_chunk // samples)
    samples_per_step = min(samples, samples_per_chunk)
    bounds = []
    with tqdm(total=len(images), desc=f"IW bound, k = {samples}", unit="image", leave=False, disable=None) as progress:
        for x in data.batches(images, images_per_chunk, shuffle=False):
            if isinstance(model, TwoLayerVAE):  # its own sampler: both layers, each term of log w sampled
                log_weights = torch.cat([_normalised(model, *model.log_weights(x, min(samples_per_step, samples - start)))
                                         for start in range(0, samples, samples_per_step)], 1)  # (B, samples)
            else:
                mu, logvar = model.posterior(x)  # (B, latent) each
                std, pixels = torch.exp(0.5 * logvar)[:, None], x.flatten(1)[:, None]  # (B, 1, latent), (B, 1, 784)
                log_weights = []
                for start in range(0, samples, samples_per_step):
                    shape = (min(samples_per_step, samples - start), len(x), model.latent_dims)
                    # Drawn sample-major: the numbers Normal(mu, std).sample((k,)) draws, so the estimate is as before.
                    noise = torch.randn(shape, device=x.device).transpose(0, 1)  # (B, k, latent)
                    z = mu[:, None] + std * noise
                    log_weights.append(log_likelihood(model, model.decode_logits(z), pixels)
                                       - sampled_kl(noise, z, logvar))
                log_weights = torch.cat(log_weights, 1)  # (B, samples)
            bounds.append(math.log(samples) - torch.logsumexp(log_weights, 1))
            progress.update(len(x))
    return torch.cat(bounds)


def _normalised(model, log_weights, recon):
    """Log weights with log p(x|z) as a normalised density or probability in place of the loss as trained."""
    return log_weights + recon - reconstruction_nll(model, recon)


@torch.inference_mode()
def negative_elbo(model, images, batch_size=EVAL_BATCH_SIZE):
    """(-ELBO, its reconstruction term, its KL) per image, (N,) each, in nats of the decoder the model was trained as:
    the reconstruction averaged over the model's k samples z ~ q(z|x) (one by default), the KL in closed form."""
    recon, kl = [], []
    for x in data.batches(images, batch_size, shuffle=False):
        _, batch_recon, batch_kl = model(x)
        recon.append(reconstruction_nll(model, batch_recon))
        kl.append(batch_kl)
    recon, kl = torch.cat(recon), torch.cat(kl)
    return recon + kl, recon, kl


@torch.inference_mode()
def kl_per_dimension(model, images, batch_size=EVAL_BATCH_SIZE):
    """The KL of each latent dimension averaged over the images, a tensor per stochastic layer: near 0 for a collapsed
    unit. One layer: in closed form. Two, [z1's, z2's]: z2's is KL(q(z2|z1) || N(0, I)) in closed form at one
    z1 ~ q(z1|x) an image; z1's prior reads a z2 drawn from that z1, so its term is sampled, log q(z1|x) -
    log p(z1|z2) at that (z1, z2). Together they are the -ELBO's KL, up to sampling."""
    if not isinstance(model, TwoLayerVAE):
        return [0.5 * sum(twice_kl_per_dimension(*model.posterior(x)).sum(0)
                          for x in data.batches(images, batch_size, False)) / len(images)]
    lower = upper = 0
    for x in data.batches(images, batch_size, shuffle=False):
        mu1, logvar1 = model.posterior(x)  # (B, latent) each
        z1 = mu1 + torch.exp(0.5 * logvar1) * torch.randn_like(mu1)
        mu2, logvar2 = model.upper_posterior(z1)  # (B, top) each
        z2 = mu2 + torch.exp(0.5 * logvar2) * torch.randn_like(mu2)
        lower = lower + (gaussian_log_density_per_dimension(z1, mu1, logvar1)
                         - gaussian_log_density_per_dimension(z1, *model.prior_of_z1(z2))).sum(0)
        upper = upper + 0.5 * twice_kl_per_dimension(mu2, logvar2).sum(0)
    return [lower / len(images), upper / len(images)]


def mean_and_standard_error(values):
    """(mean, standard error of the mean) of per-image estimates, as floats."""
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item() if len(values) > 1 else math.nan


def what_the_nats_are(model, binarize):
    """(in words, what the VAE's -ELBO and importance-weighted figures measure; whether that is a -log p(x))."""
    if model.likelihood == "gaussian":
        return (f"-log p(x) under a Gaussian decoder with variance {decoder_variance(model):g} per pixel (as trained, "
                f"beta {model.beta:g}): a density, so it can be negative", True)
    if binarize != "none":
        return "-log p(x) of binarised pixels under the Bernoulli decoder: a likelihood", True
    return "binary cross-entropy on grey levels, not a likelihood: no model brings it to 0", False


def removal_check(model, images, samples, keep, bounds):
    """Burda et al.'s check that the inactive units carry nothing: the bound with them removed from the networks
    (units.without_units), less the full model's per-image `bounds`, in nats, ± the standard error of the per-image
    differences (paired by image). Nothing to remove, nothing computed: the difference is 0."""
    removed = [int((~layer).sum()) for layer in keep]
    if not any(removed):
        return {"units_removed": removed, "removal_difference_nats": 0.0, "removal_difference_se": 0.0}
    difference, error = mean_and_standard_error(
        importance_weighted_nll(units.without_units(model, keep), images, samples) - bounds)
    return {"units_removed": removed, "removal_difference_nats": difference, "removal_difference_se": error}


def knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=NEIGHBOURS, chunk=512):
    """Accuracy of a k-nearest-neighbour vote (Euclidean) from training codes, scored on test codes."""
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = torch.zeros((), device=test_codes.device)
    for start in range(0, len(test_codes), chunk):
        distances = torch.cdist(test_codes[start : start + chunk], train_codes)  # (chunk, N_train)
        nearest = train_labels[distances.topk(k, largest=False).indices]  # (chunk, k), nearest first
        votes = F.one_hot(nearest, classes).sum(1).float()  # (chunk, classes)
        votes += 0.5 * F.one_hot(nearest[:, 0], classes)  # a tied vote goes to the nearest neighbour's class
        correct += (votes.argmax(1) == test_labels[start : start + chunk]).sum()
    return correct.item() / len(test_codes)


def measure(model, name, dataset, cfg):
    """(every metric of one model as a flat dict, the test-set codes): the numbers behind test.py's report and JSON."""
    started = time.perf_counter()
    loss = evaluate(model, dataset.test_images)
    seconds = time.perf_counter() - started
    train_codes = encode_all(model, dataset.train_images)
    test_codes = encode_all(model, dataset.test_images)
    mse, bce = reconstruction_errors(model, test_codes, dataset.test_images)
    metrics = {
        "model": name, "dataset": cfg.dataset, "binarize": cfg.binarize, "likelihood": model.likelihood,
        "beta": model.beta, "latent_dims": model.latent_dims, "test_loss": loss["loss"], "mse_per_pixel": mse,
        "bce_nats": bce,
        # With fewer training images than NEIGHBOURS (tiny data), every one of them votes.
        "knn_neighbours": min(NEIGHBOURS, len(train_codes)),
        "knn_accuracy": knn_accuracy(train_codes, dataset.train_labels, test_codes, dataset.test_labels,
                                     k=min(NEIGHBOURS, len(train_codes))),
        "test_images_per_second": len(dataset.test_images) / seconds,
    }
    if name == "vae":
        started = time.perf_counter()
        bounds = importance_weighted_nll(model, dataset.test_images, cfg.iw_samples)  # (N,)
        bound, bound_se = mean_and_standard_error(bounds)
        iw_seconds = time.perf_counter() - started
        elbo, recon, kl = negative_elbo(model, dataset.test_images)
        elbo, elbo_se = mean_and_standard_error(elbo)
        nats_are, is_likelihood = what_the_nats_are(model, cfg.binarize)
        two_layers = isinstance(model, TwoLayerVAE)  # active units and KL per dimension: of z1, then of z2
        activity = units.activities(model, dataset.test_images)
        keep = [units.active(layer) for layer in activity]
        metrics.update({
            "objective": model.objective, "k": model.k, "estimator": model.estimator, "nats_are": nats_are, "is_likelihood": is_likelihood,
            "negative_elbo_nats": elbo, "negative_elbo_se": elbo_se, "elbo_reconstruction_nats": recon.mean().item(),
            "kl_nats": kl.mean().item(), "iw_nll_nats": bound, "iw_nll_se": bound_se, "iw_samples": cfg.iw_samples,
            "iw_seconds": iw_seconds, "stochastic_layers": 2 if two_layers else 1,
            "active_units_per_layer": [int(layer.sum()) for layer in keep],
            "active_units": sum(int(layer.sum()) for layer in keep), "activity_per_layer": [a.tolist() for a in activity],
            "activity_samples_of_z1": units.UPPER_SAMPLES if two_layers else None,
            **removal_check(model, dataset.test_images, cfg.iw_samples, keep, bounds),
        })
        kl = [layer.tolist() for layer in kl_per_dimension(model, dataset.test_images)]
        metrics.update({"top_latent_dims": model.code_dims, "kl_per_dimension_per_layer": kl} if two_layers
                       else {"kl_per_dimension": kl[0]})
    return metrics, test_codes
