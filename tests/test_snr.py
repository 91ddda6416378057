"""The gradients' SNR (experiments/snr.py, experiments/snr_data.py): the statistic against a direct computation, the
slope against a direct fit, the measurement repeatable for a seed, and the command end to end on a tiny model."""
import csv
import math
import statistics

import pytest
import torch

import config
from cli import UserError
from conftest import ROOT, run_python
from experiments import pages, snr, snr_data
from checkpoints import build, model_args
from literature import network_parameters


def test_the_snr_of_synthetic_draws_is_the_direct_computation_and_near_the_true_one():
    generator = torch.Generator().manual_seed(0)
    true_mean, true_sd = torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([1.0, 2.0, 0.25, 4.0])
    draws = true_mean + true_sd * torch.randn(4000, 4, generator=generator)  # (draws, entries)
    moments = snr.Moments(4, groups=8)
    for draw in draws:
        moments.add(draw)
    value, error, entries = moments.snr()
    direct = (draws.double().mean(0).abs() / draws.double().std(0)).mean().item()
    assert entries == 4 and value == pytest.approx(direct, rel=1e-9)
    # The jackknife over the 8 groups of draws (draw i in group i % 8), computed directly.
    left_out = [(kept.mean(0).abs() / kept.std(0)).mean().item() for kept in
                (draws.double()[torch.arange(4000) % 8 != group] for group in range(8))]
    assert error == pytest.approx(math.sqrt(7 / 8 * sum((x - statistics.mean(left_out)) ** 2 for x in left_out)),
                                  rel=1e-6)
    assert abs(value - (true_mean.abs() / true_sd).mean().item()) < 4 * error  # 2.125, the true mean SNR


def test_entries_whose_draws_never_vary_are_left_out():
    moments = snr.Moments(3, groups=2)
    for draw in ([1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [1.0, 0.0, 5.0], [3.0, 0.0, 5.0]):
        moments.add(torch.tensor(draw))
    value, _, entries = moments.snr()
    assert entries == 1 and value == pytest.approx(2 / math.sqrt(4 / 3))


def test_the_slope_is_the_least_squares_line_with_its_standard_error():
    ks = [1, 5, 10, 50, 100, 500, 1000]
    assert snr_data.slope([(k, 3 * k ** -0.5) for k in ks]) == (pytest.approx(-0.5), pytest.approx(0, abs=1e-9))
    noisy = [(k, 2 * k ** 0.4 * (1 + 0.1 * (-1) ** index)) for index, k in enumerate(ks)]
    xs, ys = [math.log10(k) for k, _ in noisy], [math.log10(value) for _, value in noisy]
    fit = statistics.linear_regression(xs, ys)
    residuals = [y - fit.intercept - fit.slope * x for x, y in zip(xs, ys)]
    error = math.sqrt(sum(r * r for r in residuals) / (len(xs) - 2) / sum((x - statistics.mean(xs)) ** 2 for x in xs))
    assert snr_data.slope(noisy) == (pytest.approx(fit.slope), pytest.approx(error))


def tiny_model(layers=1):
    torch.manual_seed(0)
    values = {**config.defaults(), **(config.BURDA2015 if layers == 1 else config.BURDA2015_TWO_LAYERS),
              "hidden_dims": 16, "latent_dims": 4, "top_latent_dims": 3, "top_hidden_dims": 8}
    return build("vae", model_args(type("Config", (), values)))


@pytest.mark.parametrize("layers", [1, 2])
def test_the_measurement_repeats_for_a_seed_and_shares_the_generative_gradient(layers):
    model, images = tiny_model(layers), torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()
    sizes = {name: sum(p.numel() for p in parameters) for name, parameters in network_parameters(model).items()}
    assert sizes["inference"] > 0 and sizes["generative"] > 0
    assert sum(sizes.values()) == sum(p.numel() for p in model.parameters())
    measured = {estimator: snr.measure(model, images, 4, estimator, draws=6, groups=2, seed=3)
                for estimator in ("standard", "stl", "dreg")}
    again = snr.measure(model, images, 4, "dreg", draws=6, groups=2, seed=3)
    for network in ("inference", "generative"):
        assert torch.equal(again[network].sums, measured["dreg"][network].sums)
    # The estimators differ in the encoder's gradient only, and see the same samples of z.
    assert torch.equal(measured["stl"]["generative"].sums, measured["standard"]["generative"].sums)
    assert torch.equal(measured["dreg"]["generative"].sums, measured["standard"]["generative"].sums)
    assert not torch.allclose(measured["dreg"]["inference"].sums, measured["standard"]["inference"].sums)
    other_seed = snr.measure(model, images, 4, "dreg", draws=6, groups=2, seed=4)
    assert not torch.equal(other_seed["inference"].sums, measured["dreg"]["inference"].sums)


def rows_for(checkpoint, epochs, dreg_slope):
    return [{"checkpoint": checkpoint, "trained_by": "python -m experiments.burda2015 iwae-k50 --stages 2",
             "stage": 1, "epochs": epochs, "estimator": estimator, "network": network, "k": k,
             "snr": 0.5 * k ** (dreg_slope if estimator == "dreg" and network == "inference" else -0.5),
             "snr_se": 0.01, "parameters": 10, "images": 20, "draws": 100, "seed": 1, "machine": "test machine",
             "date": "2026-12-05", "command": "python -m experiments.snr runs/x/stage1"}
            for estimator in ("standard", "stl", "dreg") for network in ("inference", "generative")
            for k in (1, 10, 50, 100)]


def test_the_page_s_slopes_follow_the_data():
    page = (ROOT / "docs" / "snr.md").read_text()
    rows = rows_for("IWAE, k = 50, stage 1", 4, 0.3)
    text = pages.render(page, [], rows)
    assert "+0.30 ± 0.00" in text and "−1/2" in text
    changed = pages.render(page, [], rows_for("IWAE, k = 50, stage 1", 4, 0.2))
    assert "+0.20 ± 0.00" in changed and changed != text


def test_the_command_writes_the_data_and_the_figure_for_a_tiny_model(workspace, tmp_path):
    out = tmp_path / "snr.csv"
    argv = ["-m", "experiments.snr", workspace / "ckpts", "--ks", "1", "2", "4", "--draws", "4", "--groups", "2",
            "--images", "3", "--data-root", workspace / "data", "--results", out]
    result = run_python(*argv, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 * 3 * 2 and {row["network"] for row in rows} == {"inference", "generative"}
    assert all(float(row["snr"]) > 0 for row in rows) and out.with_suffix(".png").stat().st_size > 0
    assert rows[0]["command"].startswith("python -m experiments.snr ") and "--draws 4" in rows[0]["command"]


@pytest.mark.parametrize("args, phrase", [
    (["--groups", "1"], "--groups must lie between 2"),
    (["--ks", "0"], "at least 1"),
    (["--ks", "100000000"], "GiB"),
])
def test_bad_input_is_refused_before_any_work(workspace, tmp_path, args, phrase):
    out = tmp_path / "snr.csv"
    with pytest.raises(UserError, match=phrase):
        snr.main([str(workspace / "ckpts"), "--data-root", str(workspace / "data"), "--results", str(out), *args])
    assert not out.exists()


def test_a_folder_without_a_vae_is_refused(tmp_path):
    with pytest.raises(UserError, match="no VAE checkpoint"):
        snr.main([str(tmp_path), "--results", str(tmp_path / "snr.csv")])


def test_a_new_measurement_of_a_checkpoint_replaces_its_rows_and_keeps_the_others(tmp_path):
    data = tmp_path / "snr.csv"
    snr_data.replace(rows_for("stage 1", 4, 0.3) + rows_for("stage 4", 121, 0.3), data)
    snr_data.replace(rows_for("stage 1", 4, 0.2), data)
    kept = snr_data.read(data)
    assert len(kept) == 2 * len(rows_for("stage 1", 4, 0.2))
    assert [row["snr"] for row in kept if row["checkpoint"] == "stage 1"] == pytest.approx(
        [row["snr"] for row in rows_for("stage 1", 4, 0.2)], rel=1e-5)
    assert {row["checkpoint"] for row in kept} == {"stage 1", "stage 4"}
