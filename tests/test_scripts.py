"""train.py -> test.py -> visualize.py end to end, as subprocesses on tiny generated data, as a user runs them."""
import json

import imageio.v3 as iio
import pytest
import torch
from PIL import Image, ImageSequence

import visualize
from conftest import assert_clean_failure, grid_size, load, png_size, run_main, run_script, write_idx
from visualize import FRAME_MS, STEPS, STILL_STEPS


def test_train_writes_a_checkpoint_per_model_with_config_and_history(workspace):
    for name in ("ae", "vae"):
        checkpoint = load(workspace / "ckpts" / f"mnist_{name}.pt")
        assert checkpoint["model"] == name and checkpoint["config"]["batch_size"] == 64
        assert [entry["epoch"] for entry in checkpoint["history"]] == [1]
        assert set(checkpoint["history"][0]) >= {"train_loss", "test_loss", "test_recon", "test_kl", "seconds"}
    assert not list((workspace / "ckpts").glob(".*tmp*"))


def test_test_and_visualize_write_valid_plots_metrics_and_gifs(workspace):
    result = run_script("test.py", "--iw-samples", "20", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "-log p(x) <=" in result.stdout and "5-NN accuracy" in result.stdout
    plots = workspace / "plots"
    for name in ("ae", "vae"):
        for what in ("latent_space", "reconstructed_manifold", "training_curves"):
            width, height = png_size(plots / f"mnist_{name}_{what}.png")
            assert width > 300 and height > 300
        # 2 test images of each of the 10 classes above their reconstructions
        assert png_size(plots / f"mnist_{name}_reconstructions.png") == grid_size(20, 2)
        metrics = json.loads((plots / f"mnist_{name}_metrics.json").read_text())
        trained = load(workspace / "ckpts" / f"mnist_{name}.pt")["history"][-1]["test_loss"]
        # Rebuilt from its checkpoint alone, the model scores what train.py measured (the VAE samples z afresh).
        assert metrics["test_loss"] == (trained if name == "ae" else pytest.approx(trained, rel=0.02))
    assert png_size(plots / "mnist_vae_samples.png") == grid_size(10, 10)
    assert not (plots / "mnist_ae_samples.png").exists()  # an AE has no prior to sample
    metrics = json.loads((plots / "mnist_vae_metrics.json").read_text())
    assert metrics["iw_samples"] == 20 and metrics["active_units"] in (0, 1, 2)
    assert (metrics["objective"], metrics["k"], metrics["estimator"]) == ("elbo", 1, "standard")
    assert "latent 2, trained as ELBO, k = 1, 1 epoch)" in result.stdout
    assert metrics["iw_nll_nats"] <= metrics["negative_elbo_nats"] + 1.0  # a tighter bound, up to sampling noise

    result = run_script("visualize.py", "--start", "1", "--end", "7", cwd=workspace)
    assert result.returncode == 0, result.stderr
    for name in ("ae", "vae"):
        path = plots / f"mnist_{name}_interpolation_1_to_7.gif"
        frames = iio.imread(path, index=None)
        assert frames.shape[1:3] == (224, 224)  # upscaled 8x
        assert not (frames[0] == frames[len(frames) // 2]).all()  # it moves
        # Pillow folds identical neighbouring frames into one longer frame, so count play time, not stored frames.
        with Image.open(path) as gif:
            durations = [gif.info["duration"] for _ in ImageSequence.Iterator(gif)]
            assert gif.info.get("loop") == 0  # forever
        assert sum(durations) == (2 * STEPS - 2) * FRAME_MS  # 100 steps forward, 98 back
        assert png_size(plots / f"mnist_{name}_interpolations.png") == grid_size(STILL_STEPS, 10)  # 0->1 ... 9->0


def test_test_and_visualize_on_an_iwae_with_two_stochastic_layers(scratch):
    flags = ("--model", "vae", "--ckpt-dir", "two")
    trained = run_script("train.py", *flags, "--epochs", "1", "--objective", "iwae", "--k", "4", "--estimator", "dreg",
                         "--stochastic-layers", "2", "--latent-dims", "6", "--top-latent-dims", "3", "--hidden-dims",
                         "16", "--top-hidden-dims", "8", "--likelihood", "bernoulli", "--binarize", "dynamic",
                         cwd=scratch)
    assert trained.returncode == 0, trained.stderr
    flags += ("--plot-dir", "two")
    result = run_script("test.py", *flags, "--iw-samples", "8", cwd=scratch)
    assert result.returncode == 0, result.stderr
    assert "latent 6+3, trained as IWAE, k = 4, DReG gradient, two stochastic layers, 1 epoch)" in result.stdout
    metrics = json.loads((scratch / "two" / "mnist_vae_metrics.json").read_text())
    assert (metrics["objective"], metrics["k"], metrics["estimator"], metrics["stochastic_layers"]) == (
        "iwae", 4, "dreg", 2)
    # Its test loss as trained is the k = 4 bound per pixel, which the k = 8 bound can only tighten (up to noise).
    assert metrics["iw_nll_nats"] <= metrics["test_loss"] * 784 + 1.0 <= metrics["negative_elbo_nats"] + 2.0
    assert f"active units            {'+'.join(map(str, metrics['active_units_per_layer']))} of 6+3" in result.stdout
    assert [len(layer) for layer in metrics["kl_per_dimension_per_layer"]] == [6, 3]
    assert png_size(scratch / "two" / "mnist_vae_kl_per_dimension.png") == (1540, 440)  # a panel per layer
    assert png_size(scratch / "two" / "mnist_vae_activity.png")[0] > png_size(scratch / "two" /
                                                                              "mnist_vae_activity.png")[1] * 2
    assert [len(layer) for layer in metrics["activity_per_layer"]] == [6, 3]
    assert metrics["activity_samples_of_z1"] == 100
    removed = [size - active for size, active in zip((6, 3), metrics["active_units_per_layer"])]
    assert metrics["units_removed"] == removed and "without the inactive" in result.stdout
    kl_removed = [size - active for size, active in zip((6, 3), metrics["kl_active_units_per_layer"])]
    assert metrics["kl_units_removed"] == kl_removed and "without the KL-inactive" in result.stdout
    if kl_removed == removed:  # the same units: the same check, not computed twice
        assert metrics["kl_removal_difference_nats"] == metrics["removal_difference_nats"]
    result = run_script("visualize.py", *flags, "--start", "1", "--end", "7", cwd=scratch)
    assert result.returncode == 0, result.stderr
    frames = iio.imread(scratch / "two" / "mnist_vae_interpolation_1_to_7.gif", index=None)  # through z2
    assert not (frames[0] == frames[len(frames) // 2]).all()


def test_seeded_runs_repeat_and_resume_continues_exactly(tmp_path):
    write_idx(tmp_path / "data" / "MNIST" / "raw")
    common = ("--model", "vae", "--batch-size", "64")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_script("train.py", *common, "--epochs", "3", "--ckpt-dir", straight, cwd=tmp_path).returncode == 0
    assert run_script("train.py", *common, "--epochs", "2", "--ckpt-dir", split, cwd=tmp_path).returncode == 0
    first = load(split / "mnist_vae.pt")["history"]
    result = run_script("train.py", *common, "--epochs", "3", "--resume", "--ckpt-dir", split, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch 2" in result.stdout

    def losses(history):
        return [(entry["train_loss"], entry["test_loss"], entry["test_kl"]) for entry in history]

    reference = load(straight / "mnist_vae.pt")
    assert losses(first) == losses(reference["history"][:2])  # a second process repeats the first exactly
    resumed = load(split / "mnist_vae.pt")
    assert losses(resumed["history"]) == losses(reference["history"])
    for key, weight in reference["weights"].items():
        assert torch.equal(weight, resumed["weights"][key]), key


def test_a_missing_checkpoint_is_one_line_from_test_and_visualize(workspace, tmp_path):
    # Every refusal of checkpoints.load is tested in-process in test_checkpoints; here: the scripts pass it on.
    message = run_main(visualize, "--ckpt-dir", tmp_path, "--data-root", workspace / "data")
    assert message.startswith("error: no checkpoint at") and "python train.py --model ae --dataset mnist" in message
    result = run_script("test.py", "--ckpt-dir", tmp_path, cwd=workspace)  # `import test` would be Python's own package
    assert_clean_failure(result, "no checkpoint at", "python train.py --model ae --dataset mnist")


def test_test_refuses_a_plot_folder_it_cannot_write_before_measuring(workspace, tmp_path):
    (tmp_path / "plots").write_text("")
    result = run_script("test.py", "--plot-dir", tmp_path / "plots", cwd=workspace)
    assert_clean_failure(result, f"cannot write to {tmp_path / 'plots'}")
    assert result.stdout == ""  # no metric was computed first


def test_bad_flag_values_exit_cleanly_from_every_script(workspace):
    # Each value is refused in-process in test_config; here: the scripts really exit as a user sees it.
    for script, args, phrase in [
        ("train.py", ("--epochs", "0"), "--epochs must be positive"),
        ("visualize.py", ("--end", "10"), "--end must be a class index"),
    ]:
        assert_clean_failure(run_script(script, *args, cwd=workspace), phrase)
