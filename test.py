"""Evaluate trained models: test metrics, a latent-space scatter and a decoded manifold per model.

    python test.py                       # both models on MNIST
    python test.py --dataset fashion-mnist --model vae
Each model is rebuilt from the config stored in its checkpoint, so no training flags need repeating.
"""
import pickle

import matplotlib

matplotlib.use("Agg")  # render without a display
import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

import config
import data
from config import UserError
from model import MODEL_CLASSES

EVAL_BATCH_SIZE = 2000  # large: evaluation keeps no activations for a backward pass
MANIFOLD_SIZE = 20  # the decoded manifold is a MANIFOLD_SIZE x MANIFOLD_SIZE grid


def load_checkpoint(path, overrides, device):
    """(model on device, checkpoint dict, config): the model rebuilt from what the checkpoint stores."""
    if not path.is_file():
        name = path.stem.rsplit("_", 1)[-1]
        dataset = path.stem.rsplit("_", 1)[0]
        raise UserError(f"no checkpoint at {path}: run `python train.py --model {name} --dataset {dataset}` first")
    try:
        # weights_only: a checkpoint is data, never code; a crafted pickle is refused, not run.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model_class = MODEL_CLASSES[checkpoint["model"]]
        model = model_class(**checkpoint["model_args"])
        model.load_state_dict(checkpoint["weights"])
        cfg = config.merge(checkpoint["config"], overrides)
    except pickle.UnpicklingError:
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
        ax.scatter(coords[chosen, 0], y[chosen], s=2, alpha=0.6, color=cmap(index), label=name, rasterized=True)
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
    ax.imshow(grid[0], cmap="gray", extent=(0, size, 0, len(y_values)))
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


def _save_figure(fig, path):
    fig.tight_layout()
    with config.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def describe(model_name, cfg, latent_dims):
    """'VAE on fashion-mnist (latent 2)': the start of every title."""
    return f"{model_name.upper()} on {cfg.dataset} (latent {latent_dims})"


def main():
    keys = ("model", "dataset", "device", "data_root", "ckpt_dir", "plot_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = config.resolve_device(cfg.device)
    names = config.models(cfg.model)
    loaded = {name: load_checkpoint(config.checkpoint_path(cfg, name), overrides, device) for name in names}
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    for name, (model, checkpoint, model_cfg) in loaded.items():
        torch.manual_seed(model_cfg.seed)  # the VAE's test loss samples z: seeded, it repeats
        metrics = evaluate(model, dataset.test_images)
        mse = metrics["recon"] / 784 if model.likelihood == "gaussian" else None
        trained = len(checkpoint["history"])
        line = f"{name}: test loss {metrics['loss']:.4f} ({trained} epochs)"
        if mse is not None:
            line += f" | reconstruction MSE {mse:.4f} per pixel"
        else:
            line += f" | reconstruction BCE {metrics['recon']:.2f} nats per image"
        if name == "vae":
            line += f" | KL {metrics['kl']:.2f} nats per image"
        print(line)
        codes = encode_all(model, dataset.test_images)
        title = describe(name, model_cfg, model.latent_dims)
        latent_space = config.output_path(model_cfg, name, "latent_space.png")
        plot_latent_space(codes, dataset.test_labels, dataset.classes, f"{title}: test-set latent means" if name == "vae" else f"{title}: test-set codes", latent_space)
        manifold = config.output_path(model_cfg, name, "reconstructed_manifold.png")
        plot_manifold(model, codes, name == "vae", f"{title}: decoded latent grid", manifold)
        print(f"  wrote {latent_space} and {manifold}")


if __name__ == "__main__":
    config.run(main)
