"""Evaluate trained models: test metrics (printed and saved as JSON) and a gallery of figures per model.

    python test.py                       # both models on MNIST
    python test.py --dataset fashion-mnist --model vae --iw-samples 100
Each model is rebuilt from the config stored in its checkpoint, so no training flags need repeating.
"""
import json
import math
import pickle
import time

import matplotlib

matplotlib.use("Agg")  # render without a display
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

import config
import data
from config import UserError
from model import MODEL_CLASSES, PIXELS, binary_cross_entropy, log_likelihood, nll_constant, squared_error

EVAL_BATCH_SIZE = 2000  # large: evaluation keeps no activations for a backward pass
MANIFOLD_SIZE = 20  # the decoded manifold is a MANIFOLD_SIZE x MANIFOLD_SIZE grid
SAMPLES_PER_CHUNK = 2048  # decoded importance samples at once: 6 MB of logits stays in cache, and
# below glibc's mmap threshold, so chunks are not page-faulted afresh (16384 was 1.5x slower)
NEIGHBOURS = 5  # k of the k-nearest-neighbour classifier on latent codes
ACTIVE_UNIT_THRESHOLD = 0.01  # a latent unit is active if its posterior mean varies more than this (Burda et al.)
GALLERY_PER_CLASS = 2  # test images per class in the reconstructions figure
SAMPLE_GRID = 10  # the VAE's samples figure is SAMPLE_GRID x SAMPLE_GRID
GALLERY_SEED = 0  # the samples figure decodes the same z every run


def load_checkpoint(cfg, name, overrides, device):
    """(model on device, checkpoint dict, config) of model `name`, rebuilt from what its checkpoint stores."""
    path = config.checkpoint_path(cfg, name)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: run `python train.py --model {name} --dataset {cfg.dataset}` first")
    try:
        # weights_only: a checkpoint is data, never code; a crafted pickle is refused, not run.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model_class = MODEL_CLASSES[checkpoint["model"]]
        model = model_class(**checkpoint["model_args"])
        model.load_state_dict(checkpoint["weights"])
        cfg = config.merge(checkpoint["config"], overrides)
    except pickle.UnpicklingError as error:
        # torch names the class a crafted pickle asks for "Unsupported global"; anything else is a damaged file.
        if "Unsupported global" not in str(error):
            raise UserError(f"{path} is not a usable checkpoint of this project (damaged or not a checkpoint); "
                            "retrain with train.py") from None
        raise UserError(
            f"{path} was refused: it holds Python objects other than tensors and plain data, which could run code "
            "when loaded; only load checkpoints written by train.py"
        ) from None
    except Exception as error:
        # load_state_dict puts the telling part (e.g. "size mismatch for to_latent.weight") on its second line.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
        detail = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
        raise UserError(
            f"{path} is not a usable checkpoint of this project ({type(error).__name__}: {detail[:200]}); "
            "retrain with train.py"
        ) from None
    if checkpoint["model"] != name:
        raise UserError(f"{path} is a checkpoint of the {checkpoint['model'].upper()}, not the {name.upper()}; "
                        "retrain with train.py")
    return model.to(device), checkpoint, cfg


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
    """Latent codes (N, latent) of all images: the posterior mean for the VAE."""
    return torch.cat([model.encode(x) for x in data.batches(images, batch_size, shuffle=False)])


@torch.inference_mode()
def reconstruction_errors(model, codes, images, batch_size=EVAL_BATCH_SIZE):
    """(MSE per pixel, binary cross-entropy in nats per image) of the images decoded from their codes.

    With codes from encode_all (the VAE's posterior means) these are deterministic for both models.
    """
    totals = torch.zeros(2, device=images.device)
    for start, x in zip(range(0, len(images), batch_size), data.batches(images, batch_size, shuffle=False)):
        logits, x = model.decoder(codes[start : start + batch_size]), x.flatten(1)  # (B, 784) each
        totals += torch.stack([squared_error(logits, x).sum() / PIXELS, binary_cross_entropy(logits, x).sum()])
    mse, bce = (totals / len(images)).tolist()
    return mse, bce


@torch.inference_mode()
def importance_weighted_nll(model, images, samples, samples_per_chunk=SAMPLES_PER_CHUNK):
    """The importance-weighted upper bound on -log p(x) (Burda et al. 2015), in nats, averaged over images.

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x): with k = 1 this is the ELBO,
    and the bound tightens as k grows. Images and samples are cut into chunks so memory stays bounded.
    """
    images_per_chunk = max(1, samples_per_chunk // samples)
    samples_per_step = min(samples, samples_per_chunk)
    prior = torch.distributions.Normal(0.0, 1.0)
    total = torch.zeros((), device=images.device)
    for x in data.batches(images, images_per_chunk, shuffle=False):
        mu, logvar = model.posterior(x)  # (B, latent) each
        posterior = torch.distributions.Normal(mu[:, None], torch.exp(0.5 * logvar)[:, None])  # batch shape (B, 1, latent)
        pixels = x.flatten(1)[:, None]  # (B, 1, 784)
        log_weights = []
        for start in range(0, samples, samples_per_step):
            z = posterior.sample((min(samples_per_step, samples - start),)).squeeze(2).transpose(0, 1)  # (B, k, latent)
            logits = model.decoder(z)  # (B, k, 784)
            log_joint = log_likelihood(model, logits, pixels.expand_as(logits)) + prior.log_prob(z).sum(-1)
            log_weights.append(log_joint - posterior.log_prob(z).sum(-1))  # (B, k)
        log_weights = torch.cat(log_weights, 1)  # (B, samples)
        total += (math.log(samples) - torch.logsumexp(log_weights, 1)).sum()
    return total.item() / len(images)


def active_units(codes, threshold=ACTIVE_UNIT_THRESHOLD):
    """How many latent dims have posterior means that vary across the data: Cov_x(E_q[z_u]) > threshold."""
    return int((codes.var(0) > threshold).sum())


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
    """Every metric of one model as a flat dict, the numbers behind the printed report and the JSON."""
    started = time.perf_counter()
    loss = evaluate(model, dataset.test_images)
    seconds = time.perf_counter() - started
    train_codes = encode_all(model, dataset.train_images)
    test_codes = encode_all(model, dataset.test_images)
    mse, bce = reconstruction_errors(model, test_codes, dataset.test_images)
    metrics = {
        "model": name, "dataset": cfg.dataset, "likelihood": model.likelihood, "beta": model.beta,
        "latent_dims": model.latent_dims, "test_loss": loss["loss"], "mse_per_pixel": mse, "bce_nats": bce,
        "knn_accuracy": knn_accuracy(train_codes, dataset.train_labels, test_codes, dataset.test_labels),
        "test_images_per_second": len(dataset.test_images) / seconds,
    }
    if name == "vae":
        recon_nll = loss["recon"] + nll_constant(model.likelihood)
        started = time.perf_counter()
        metrics.update({
            "negative_elbo_nats": recon_nll + loss["kl"], "elbo_reconstruction_nats": recon_nll, "kl_nats": loss["kl"],
            "iw_nll_nats": importance_weighted_nll(model, dataset.test_images, cfg.iw_samples),
            "iw_samples": cfg.iw_samples, "iw_seconds": time.perf_counter() - started,
            "active_units": active_units(test_codes),
        })
    return metrics, test_codes


def report(metrics, epochs):
    """The printed form of measure()'s dict."""
    m = metrics
    rows = [("test loss (as trained)", f"{m['test_loss']:.4f}"),
            ("reconstruction", f"MSE {m['mse_per_pixel']:.4f} per pixel, BCE {m['bce_nats']:.1f} nats per image")]
    if m["model"] == "vae":
        rows += [("-ELBO", f"{m['negative_elbo_nats']:.2f} nats per image = {m['elbo_reconstruction_nats']:.2f} "
                           f"reconstruction + {m['kl_nats']:.2f} KL"),
                 ("-log p(x) <=", f"{m['iw_nll_nats']:.2f} nats per image (importance-weighted, "
                                  f"k = {m['iw_samples']}, {m['iw_seconds']:.1f} s)"),
                 ("active units", f"{m['active_units']} of {m['latent_dims']}")]
    rows += [(f"{NEIGHBOURS}-NN accuracy", f"{m['knn_accuracy']:.4f} (on latent codes)"),
             ("speed", f"{m['test_images_per_second']:,.0f} test images/s (loss pass)")]
    heading = (f"{m['model']} on {m['dataset']} ({m['likelihood']} likelihood, beta {m['beta']:g}, "
               f"latent {m['latent_dims']}, {epochs} epochs)")
    return "\n".join([heading] + [f"  {label:<24}{value}" for label, value in rows])


def latent_plane(codes):
    """(origin, basis (latent, k), axis names): the plane the plots show, k = min(2, latent).

    With more than 2 latent dims this is the plane of the codes' 2 principal components.
    """
    latent_dims = codes.shape[1]
    if latent_dims <= 2:
        return codes.new_zeros(latent_dims), torch.eye(latent_dims, device=codes.device), ["z[0]", "z[1]"][:latent_dims]
    center = codes.mean(0)
    _, _, right_vectors = torch.linalg.svd(codes - center, full_matrices=False)
    return center, right_vectors[:2].T, ["principal component 1", "principal component 2"]


def plot_latent_space(codes, labels, classes, title, path):
    origin, basis, axis_names = latent_plane(codes)
    coords = ((codes - origin) @ basis).cpu()  # (N, k)
    labels = labels.cpu()
    # A 1-D code is drawn against its class, so the classes still separate vertically.
    y = coords[:, 1] if coords.shape[1] > 1 else labels + 0.8 * (torch.rand(len(labels)) - 0.5)
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab10")
    for index, name in enumerate(classes):
        chosen = labels == index
        ax.scatter(coords[chosen, 0].numpy(), y[chosen].numpy(), s=2, alpha=0.6, color=cmap(index), label=name, rasterized=True)
    ax.legend(markerscale=6, fontsize=8, loc="best", title="class")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1] if coords.shape[1] > 1 else "class")
    ax.set_title(title)
    _save_figure(fig, path)


@torch.inference_mode()
def plot_manifold(model, codes, is_vae, title, path, size=MANIFOLD_SIZE):
    """Decode a size x size grid over the latent plane in one batched call.

    VAE: the grid sits at evenly spaced quantiles of the N(0, 1) prior (inverse CDF), so each cell
    covers equal prior mass. AE: its codes are not centred, so the grid spans the central 99% of test codes.
    """
    origin, basis, axis_names = latent_plane(codes)
    if is_vae:
        origin = torch.zeros_like(origin)  # the prior's centre
        quantiles = torch.linspace(0.05, 0.95, size, device=codes.device)
        axis_values = [torch.distributions.Normal(0.0, 1.0).icdf(quantiles)] * basis.shape[1]
    else:
        coords = (codes - origin) @ basis
        low, high = torch.quantile(coords, torch.tensor([0.005, 0.995], device=codes.device), dim=0)
        axis_values = [torch.linspace(low[i], high[i], size, device=codes.device) for i in range(basis.shape[1])]
    x_values = axis_values[0]
    # Rows run top to bottom, so the top row takes the largest y value.
    y_values = axis_values[1].flip(0) if len(axis_values) > 1 else torch.zeros(1, device=codes.device)
    grid_y, grid_x = torch.meshgrid(y_values, x_values, indexing="ij")  # (rows, size) each
    plane = torch.stack([grid_x.flatten(), grid_y.flatten()], 1)[:, : basis.shape[1]]  # (rows * size, k)
    images = model.decode(origin + plane @ basis.T)  # (rows * size, 1, 28, 28)
    grid = make_grid(images.cpu(), nrow=size, padding=0)  # (3, rows * 28, size * 28)
    fig, ax = plt.subplots(figsize=(9, 9 * len(y_values) / size + 1))
    ax.imshow(grid[0].numpy(), cmap="gray", extent=(0, size, 0, len(y_values)))
    step = max(1, size // 10)
    ax.set_xticks([i + 0.5 for i in range(0, size, step)], [f"{x_values[i]:.2f}" for i in range(0, size, step)])
    ax.set_yticks(
        [len(y_values) - i - 0.5 for i in range(0, len(y_values), step)],
        [f"{y_values[i]:.2f}" for i in range(0, len(y_values), step)],
    )
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1] if len(axis_names) > 1 else "")
    ax.set_title(title)
    _save_figure(fig, path)


def save_grid(images, path, nrow):
    """Images (N, 1, 28, 28) as one PNG grid, nrow per row, 2 white pixels between them: exact pixel sizes."""
    with config.atomic_path(path) as tmp:
        save_image(images.cpu(), tmp, nrow=nrow, padding=2, pad_value=1.0)


def gallery_indices(labels, per_class=GALLERY_PER_CLASS):
    """The first `per_class` test images of each class, class by class: the same images every run."""
    return torch.cat([(labels == label).nonzero()[:per_class, 0] for label in labels.unique()])


@torch.inference_mode()
def plot_reconstructions(model, images, labels, path):
    chosen = data.to_float(images[gallery_indices(labels)])[:, None]  # (N, 1, 28, 28)
    save_grid(torch.cat([chosen, model.decode(model.encode(chosen))]), path, nrow=len(chosen))


@torch.inference_mode()
def plot_samples(model, path, size=SAMPLE_GRID, seed=GALLERY_SEED):
    device = next(model.parameters()).device
    z = torch.randn(size * size, model.latent_dims, generator=torch.Generator().manual_seed(seed)).to(device)
    save_grid(model.decode(z), path, nrow=size)


def plot_training_curves(history, is_vae, title, path):
    epochs = [entry["epoch"] for entry in history]
    fig, axes = plt.subplots(1, 2 if is_vae else 1, figsize=(12 if is_vae else 6, 4.5), squeeze=False)
    loss_axes = axes[0, 0]
    loss_axes.plot(epochs, [entry["train_loss"] for entry in history], marker="o", label="train")
    loss_axes.plot(epochs, [entry["test_loss"] for entry in history], marker="o", label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss (as trained)", title="loss")
    loss_axes.legend()
    if is_vae:
        parts_axes = axes[0, 1]
        parts_axes.plot(epochs, [entry["test_recon"] for entry in history], marker="o", label="reconstruction", color="C2")
        parts_axes.set(xlabel="epoch", ylabel="reconstruction (nats per image, less constant)", title="test loss parts")
        kl_axes = parts_axes.twinx()
        kl_axes.plot(epochs, [entry["test_kl"] for entry in history], marker="s", label="KL", color="C3")
        kl_axes.set_ylabel("KL (nats per image)")
        parts_axes.legend(handles=parts_axes.lines + kl_axes.lines, loc="center right")
    for axes_ in axes[0]:
        axes_.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.suptitle(title)
    _save_figure(fig, path)


def _save_figure(fig, path):
    fig.tight_layout()
    with config.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def describe(model_name, cfg, latent_dims):
    """'VAE on fashion-mnist (latent 2)': the start of every title."""
    return f"{model_name.upper()} on {cfg.dataset} (latent {latent_dims})"


def main():
    keys = ("model", "dataset", "device", "iw_samples", "data_root", "ckpt_dir", "plot_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = config.resolve_device(cfg.device)
    names = config.models(cfg.model)
    loaded = {name: load_checkpoint(cfg, name, overrides, device) for name in names}
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    for name, (model, checkpoint, model_cfg) in loaded.items():
        torch.manual_seed(model_cfg.seed)  # the VAE's loss and bound sample z: seeded, they repeat
        metrics, codes = measure(model, name, dataset, model_cfg)
        print(report(metrics, len(checkpoint["history"])))
        title = describe(name, model_cfg, model.latent_dims)
        outputs = {what: config.output_path(model_cfg, name, what) for what in (
            "metrics.json", "latent_space.png", "reconstructed_manifold.png", "reconstructions.png",
            "training_curves.png") + (("samples.png",) if name == "vae" else ())}
        with config.atomic_path(outputs["metrics.json"]) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        what_codes = "test-set latent means" if name == "vae" else "test-set codes"
        plot_latent_space(codes, dataset.test_labels, dataset.classes, f"{title}: {what_codes}", outputs["latent_space.png"])
        plot_manifold(model, codes, name == "vae", f"{title}: decoded latent grid", outputs["reconstructed_manifold.png"])
        plot_reconstructions(model, dataset.test_images, dataset.test_labels, outputs["reconstructions.png"])
        plot_training_curves(checkpoint["history"], name == "vae", title, outputs["training_curves.png"])
        if name == "vae":
            plot_samples(model, outputs["samples.png"])
        print(f"  wrote {', '.join(str(path) for path in outputs.values())}")


if __name__ == "__main__":
    config.run(main)
