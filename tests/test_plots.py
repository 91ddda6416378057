"""The figures: any latent size draws, image grids have exact pixel sizes, files land where the README says."""
from types import SimpleNamespace

import pytest
import torch

import plots
from conftest import grid_size, png_size
from model import AutoEncoder, VariationalAutoEncoder


def tiny_images(count):
    return torch.randint(0, 256, (count, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("latent_dims", [1, 2, 8])
@pytest.mark.parametrize("is_vae", [False, True])
def test_latent_plots_for_any_latent_size(tmp_path, latent_dims, is_vae):
    """1 latent dim is drawn against the class, 2 as they are, more on their 2 principal components."""
    torch.manual_seed(0)
    model = (VariationalAutoEncoder if is_vae else AutoEncoder)(latent_dims=latent_dims, hidden_dims=16)
    images, labels = tiny_images(50), torch.arange(50) % 10
    codes = model.encode(images.float().div(255)).detach()
    origin, basis, axis_names = plots.latent_plane(codes)
    assert basis.shape == (latent_dims, min(2, latent_dims)) and len(axis_names) == min(2, latent_dims)
    assert torch.allclose(basis.T @ basis, torch.eye(min(2, latent_dims)), atol=1e-5)  # orthonormal axes
    plots.plot_latent_space(codes, labels, [str(label) for label in range(10)], "title", tmp_path / "latent.png")
    plots.plot_manifold(model, codes, is_vae, "title", tmp_path / "manifold.png", size=6)
    assert min(png_size(tmp_path / "latent.png")) > 600  # decodes, or raises
    width, height = png_size(tmp_path / "manifold.png")
    assert width > 900 and (height > 900 if latent_dims > 1 else height < 400)  # one row of 6 images for 1 dim


def test_reconstructions_show_each_class_above_its_decoding(tmp_path):
    torch.manual_seed(0)
    model = AutoEncoder(latent_dims=2, hidden_dims=16)
    images, labels = tiny_images(40), torch.arange(40) % 10
    assert plots.gallery_indices(labels).tolist() == [0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 6, 16, 7, 17, 8, 18, 9, 19]
    plots.plot_reconstructions(model, images, labels, tmp_path / "reconstructions.png")
    assert png_size(tmp_path / "reconstructions.png") == grid_size(20, 2)


def test_output_paths_name_the_dataset_the_model_and_the_figure():
    cfg = SimpleNamespace(plot_dir="somewhere", dataset="fashion-mnist")
    assert str(plots.output_path(cfg, "vae", "latent_space.png")) == "somewhere/fashion-mnist_vae_latent_space.png"


def test_kl_per_dimension_figure(tmp_path):
    plots.plot_kl_per_dimension([[0.5, 1e-4, 2.0, 3e-4]], [2], "VAE", tmp_path / "kl.png")
    width, height = png_size(tmp_path / "kl.png")
    assert (width, height) == (770, 440)  # 7 x 4 inches at 110 dpi
    plots.plot_kl_per_dimension([[0.5, 1e-4, 2.0, 3e-4], [1.0, 1e-5]], [2, 1], "VAE", tmp_path / "kl2.png")
    assert png_size(tmp_path / "kl2.png") == (1540, 440)  # a panel per stochastic layer
