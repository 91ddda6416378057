"""Every figure the scripts write, and where it goes: latent space, decoded manifold, image grids, training curves.

matplotlib's object interface (Figure, not pyplot) draws straight to files: no display, no global state. Each
function writes the path it is given; the scripts give temporaries (files.atomic_paths), so a set lands whole.
"""
import math
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid, save_image

import data

MANIFOLD_SIZE = 20  # the decoded manifold is a MANIFOLD_SIZE x MANIFOLD_SIZE grid
GALLERY_PER_CLASS = 2  # test images per class in the reconstructions figure
SAMPLE_GRID = 10  # the VAE's samples figure is SAMPLE_GRID x SAMPLE_GRID
GALLERY_SEED = 0  # the samples figure decodes the same z every run
# Room test.py needs per model for its figures and metrics, checked before it measures: a VAE's set on MNIST and
# Fashion-MNIST is 1.1 to 1.4 MB (the README's gallery), most of it the latent space and the manifold.
FIGURE_SET_BYTES = 3_000_000


def output_path(cfg, model_name, what):
    """Where a figure, GIF or metrics file of one model goes, e.g. plots/mnist_vae_latent_space.png."""
    return Path(cfg.plot_dir) / f"{cfg.dataset}_{model_name}_{what}"


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
    fig = Figure(figsize=(8, 7))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
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
    fig = Figure(figsize=(9, 9 * len(y_values) / size + 1))
    ax = fig.subplots()
    ax.imshow(grid[0].numpy(), cmap="gray", extent=(0, size, 0, len(y_values)))
    step = max(1, size // 10)
    ax.set_xticks([i + 0.5 for i in range(0, size, step)], [f"{x_values[i]:.2f}" for i in range(0, size, step)])
    ax.set_yticks(
        [len(y_values) - i - 0.5 for i in range(0, len(y_values), step)],
        [f"{y_values[i]:.2f}" for i in range(0, len(y_values), step)],
    )
    # The VAE's ticks are N(0, 1) quantiles: evenly spaced in prior mass, unevenly in value.
    spacing = ": the N(0, 1) quantiles 5% to 95%" if is_vae else ""
    ax.set_xlabel(axis_names[0] + spacing)
    ax.set_ylabel(axis_names[1] + spacing if len(axis_names) > 1 else "")
    ax.set_title(title)
    _save_figure(fig, path)


def save_grid(images, path, nrow):
    """Images (N, 1, 28, 28) as one PNG grid, nrow per row, 2 white pixels between them: exact pixel sizes."""
    save_image(images.cpu(), path, nrow=nrow, padding=2, pad_value=1.0)


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
    z = torch.randn(size * size, model.code_dims, generator=torch.Generator().manual_seed(seed)).to(device)
    save_grid(model.decode(z), path, nrow=size)


def plot_training_curves(history, is_vae, title, path):
    epochs = [entry["epoch"] for entry in history]
    fig = Figure(figsize=(12 if is_vae else 6, 4.5))
    axes = fig.subplots(1, 2 if is_vae else 1, squeeze=False)[0]
    loss_axes = axes[0]
    loss_axes.plot(epochs, [entry["train_loss"] for entry in history], marker="o", label="train")
    loss_axes.plot(epochs, [entry["test_loss"] for entry in history], marker="o", label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss (as trained)", title="loss")
    loss_axes.legend()
    if is_vae:
        parts_axes = axes[1]
        parts_axes.plot(epochs, [entry["test_recon"] for entry in history], marker="o", label="reconstruction", color="C2")
        parts_axes.set(xlabel="epoch", ylabel="reconstruction (nats per image, less constant)", title="test loss parts")
        kl_axes = parts_axes.twinx()
        kl_axes.plot(epochs, [entry["test_kl"] for entry in history], marker="s", label="KL", color="C3")
        kl_axes.set_ylabel("KL (nats per image)")
        parts_axes.legend(handles=parts_axes.lines + kl_axes.lines, loc="center right")
    for each in axes:
        each.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    _save_figure(fig, path)


def plot_kl_per_dimension(kl_per_layer, active_per_layer, title, path):
    """The KL of each latent dimension, largest first, a panel per stochastic layer: the units the model uses stand
    above the collapsed ones."""
    layers = len(kl_per_layer)
    fig = Figure(figsize=(7 * layers, 4))
    for layer, (ax, kl, active) in enumerate(zip(fig.subplots(1, layers, squeeze=False)[0], kl_per_layer,
                                                 active_per_layer), 1):
        ax.bar(range(1, len(kl) + 1), sorted(kl, reverse=True), color="C0")
        ax.set(xlabel="latent dimension, by KL", ylabel="KL, nats per image", yscale="log",
               title=f"{f'z{layer}' if layers > 1 else title}: {active} of {len(kl)} units active")
    if layers > 1:
        fig.suptitle(title)
    _save_figure(fig, path)


def plot_activity(activity_per_layer, threshold, title, path):
    """A histogram of log10 A_u, each latent unit's activity, a panel per stochastic layer, with the threshold
    between inactive and active units (Burda et al. 2015, Appendix C): two modes far apart make the count robust."""
    layers = len(activity_per_layer)
    fig = Figure(figsize=(6 * layers, 3.8))
    for layer, (ax, activity) in enumerate(zip(fig.subplots(1, layers, squeeze=False)[0], activity_per_layer), 1):
        logs = [math.log10(max(value, 1e-12)) for value in activity]  # a unit of exactly 0 at 1e-12
        ax.hist(logs, bins=30, color="C0")
        ax.axvline(math.log10(threshold), color="C3", linestyle="--", label=f"threshold {threshold:g}")
        active = sum(value > threshold for value in activity)
        ax.set(xlabel="log10 A_u, A_u = Cov_x(E_q[z_u])", ylabel="units",
               title=f"{f'z{layer}' if layers > 1 else title}: {active} of {len(activity)} units active")
        ax.legend(fontsize=8)
    if layers > 1:
        fig.suptitle(title)
    _save_figure(fig, path)


def _save_figure(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
