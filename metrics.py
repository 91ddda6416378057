"""The numbers test.py reports (and train.py's per-epoch test loss): the loss pass, latent codes, reconstruction
errors, the importance-weighted bound on -log p(x), active units and k-NN accuracy of the codes."""
import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

import data
import units
from literature import negative_iwae_bound
from loop import EVAL_BATCH_SIZE, evaluate
from model import PIXELS, squared_error
from speed import binary_cross_entropy

SAMPLES_PER_CHUNK = 2048  # decoded importance samples at once: few enough that their logits stay in cache
NEIGHBOURS = 5  # k of the k-nearest-neighbour classifier on latent codes


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
            log_weights = []
            for start in range(0, samples, samples_per_step):
                weights = model.log_weights(x, min(samples_per_step, samples - start))
                log_weights.append(weights.latent - reconstruction_nll(model, weights.recon))  # (B, samples_per_step)
            bounds.append(negative_iwae_bound(torch.cat(log_weights, 1)))  # (B,)
            progress.update(len(x))
    return torch.cat(bounds)


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
    """The KL of each latent unit averaged over the images, a tensor per stochastic layer: near 0 for a collapsed
    unit (the model's kl_per_dimension says how each layer's is computed)."""
    batches = [model.kl_per_dimension(x) for x in data.batches(images, batch_size, shuffle=False)]
    return [sum(layer) / len(images) for layer in zip(*batches)]


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
        "latent_dims": model.latent_dims, "test_loss": loss["loss"], "mse_per_pixel": mse,
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
        activity = units.activities(model, dataset.test_images)  # a tensor per stochastic layer: z1's, then z2's
        two_layers = len(activity) == 2
        keep = [units.active(layer) for layer in activity]
        metrics.update({
            "beta": model.beta, "objective": model.objective, "k": model.k, "estimator": model.estimator,
            "nats_are": nats_are, "is_likelihood": is_likelihood,
            "negative_elbo_nats": elbo, "negative_elbo_se": elbo_se, "elbo_reconstruction_nats": recon.mean().item(),
            "kl_nats": kl.mean().item(), "iw_nll_nats": bound, "iw_nll_se": bound_se, "iw_samples": cfg.iw_samples,
            "iw_seconds": iw_seconds, "stochastic_layers": 2 if two_layers else 1,
            "active_units_per_layer": [int(layer.sum()) for layer in keep],
            "active_units": sum(int(layer.sum()) for layer in keep), "activity_per_layer": [a.tolist() for a in activity],
            "activity_samples_of_z1": units.UPPER_SAMPLES if two_layers else None,
            **removal_check(model, dataset.test_images, cfg.iw_samples, keep, bounds),
        })
        kl = kl_per_dimension(model, dataset.test_images)  # a tensor per stochastic layer
        kl_keep = [units.active(layer, units.KL_THRESHOLD) for layer in kl]
        metrics["kl_active_units_per_layer"] = [int(layer.sum()) for layer in kl_keep]
        # The same check on the units the KL count calls inactive: computed only where the two counts differ.
        same = all(torch.equal(a, b) for a, b in zip(keep, kl_keep))
        kl_check = removal_check(model, dataset.test_images, cfg.iw_samples, kl_keep, bounds) if not same else {
            key: metrics[key] for key in ("units_removed", "removal_difference_nats", "removal_difference_se")}
        metrics.update({f"kl_{key}": value for key, value in kl_check.items()})
        kl = [layer.tolist() for layer in kl]
        metrics.update({"top_latent_dims": model.code_dims, "kl_per_dimension_per_layer": kl} if two_layers
                       else {"kl_per_dimension": kl[0]})
    return metrics, test_codes
