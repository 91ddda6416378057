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


def test_the_figures_of_synthetic_draws_are_the_direct_computation_and_near_the_true_ones():
    generator = torch.Generator().manual_seed(0)
    true_mean, true_sd = torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([1.0, 2.0, 0.25, 4.0])
    draws = (true_mean + true_sd * torch.randn(4000, 4, generator=generator)).double()  # (draws, entries)
    moments = snr.Moments(4, groups=8)
    for draw in draws:
        moments.add(draw)
    figures = moments.figures()

    def direct(kept):
        mean, variance = kept.mean(0), kept.var(0)
        signal = (mean.square().sum() - variance.sum() / len(kept)).sqrt().item()
        return {"snr": (mean.abs() / variance.sqrt()).mean().item(), "signal": signal,
                "noise": variance.sum().sqrt().item(), "vector_snr": signal / variance.sum().sqrt().item()}

    # The standard error: the figures' spread over the 8 independent groups (draw i in group i % 8) / sqrt(8).
    groups = [direct(draws[torch.arange(4000) % 8 == group]) for group in range(8)]
    for name, value in direct(draws).items():
        assert figures[name][0] == pytest.approx(value, rel=1e-9)
        assert figures[name][1] == pytest.approx(statistics.stdev(group[name] for group in groups) / math.sqrt(8),
                                                 rel=1e-6)
    truth = {"snr": (true_mean.abs() / true_sd).mean().item(), "signal": true_mean.norm().item(),
             "noise": true_sd.norm().item(), "vector_snr": (true_mean.norm() / true_sd.norm()).item()}
    for name, value in truth.items():
        assert abs(figures[name][0] - value) < 4 * figures[name][1], name


def test_the_signal_has_no_floor_where_the_mean_snr_has_one():
    draws = torch.randn(400, 1000, generator=torch.Generator().manual_seed(1))  # mean 0: no signal at all
    moments = snr.Moments(1000, groups=4)
    for draw in draws:
        moments.add(draw)
    figures = moments.figures()
    assert figures["snr"][0] == pytest.approx(0.8 / math.sqrt(400), rel=0.1)  # the floor sqrt(2 / pi) / sqrt(R)
    assert figures["vector_snr"][0] < 3 * figures["vector_snr"][1] + 1e-9


def test_entries_whose_draws_never_vary_are_left_out_of_the_mean_snr():
    moments = snr.Moments(3, groups=2)
    for draw in ([1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [3.0, 0.0, 5.0], [1.0, 0.0, 5.0]):
        moments.add(torch.tensor(draw))
    assert moments.figures()["snr"][0] == pytest.approx(2 / math.sqrt(4 / 3))


def test_the_slope_is_read_decade_by_decade():
    rows = [{"k": k, "snr": 3 * min(k, 100) ** -0.5, "snr_se": 0.01 * k ** -0.5} for k in (1, 5, 10, 100, 1000)]
    (first, first_se), (second, _), (third, _) = snr_data.per_decade(rows, "snr")
    assert (first, second, third) == (pytest.approx(-0.5), pytest.approx(-0.5), pytest.approx(0.0, abs=1e-12))
    assert first_se == pytest.approx(math.hypot(0.01 / 3, 0.01 / 3) / math.log(10))
    assert snr_data.per_decade(rows[:3], "snr")[1:] == [None, None]  # no k = 100 or 1000 in the grid


def test_the_positive_control_shows_the_theorem_s_slopes_where_they_hold():
    """Rainforth et al.'s Theorem 1 near the optimum, where the weights stay good (ESS / k about 0.5): the standard
    inference gradient's signal / noise falls like 1 / sqrt(k), its noise like 1 / sqrt(k), and the generative
    gradient's SNR rises like sqrt(k). Its signal is resolved from 1,000 draws up to k = 10 only."""
    model = snr.LinearGaussian(0.01, images=20, seed=1)
    rows = {}
    for k in (1, 10, 100):
        moments, ess = snr.measure(model, model.images, k, "standard", draws=1000, groups=4, seed=1)
        assert 0.4 < ess <= 1
        for network, found in moments.items():
            figures = found.figures()
            rows.setdefault(network, []).append({"k": k, **{name: value for name, (value, _) in figures.items()},
                                                 **{f"{name}_se": error for name, (_, error) in figures.items()}})
    slopes = {(network, figure): [slope[0] for slope in snr_data.per_decade(series, figure)[:2]]
              for network, series in rows.items() for figure in ("vector_snr", "noise", "snr")}
    assert slopes["inference", "vector_snr"][0] == pytest.approx(-0.5, abs=0.15)
    assert slopes["inference", "noise"] == pytest.approx([-0.5, -0.5], abs=0.1)
    assert slopes["generative", "snr"] == pytest.approx([0.5, 0.5], abs=0.1)


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
    measured = {estimator: snr.measure(model, images, 4, estimator, draws=6, groups=2, seed=3)[0]
                for estimator in ("standard", "stl", "dreg")}
    again = snr.measure(model, images, 4, "dreg", draws=6, groups=2, seed=3)[0]
    for network in ("inference", "generative"):
        assert torch.equal(again[network].sums, measured["dreg"][network].sums)
    # The estimators differ in the encoder's gradient only, and see the same samples of z.
    assert torch.equal(measured["stl"]["generative"].sums, measured["standard"]["generative"].sums)
    assert torch.equal(measured["dreg"]["generative"].sums, measured["standard"]["generative"].sums)
    assert not torch.allclose(measured["dreg"]["inference"].sums, measured["standard"]["inference"].sums)
    other_seed = snr.measure(model, images, 4, "dreg", draws=6, groups=2, seed=4)[0]
    assert not torch.equal(other_seed["inference"].sums, measured["dreg"]["inference"].sums)


def rows_for(checkpoint, epochs, dreg_slope):
    def figure(estimator, network, k):
        return 0.5 * k ** (dreg_slope if estimator == "dreg" and network == "inference" else -0.5)

    return [{"checkpoint": checkpoint, "trained_by": "python -m experiments.burda2015 iwae-k50 --stages 2",
             "stage": 1, "epochs": epochs, "estimator": estimator, "network": network, "k": k,
             "snr": figure(estimator, network, k), "snr_se": 0.0, "vector_snr": figure(estimator, network, k),
             "vector_snr_se": 0.0, "signal": 1.0, "signal_se": 0.0, "noise": 1.0, "noise_se": 0.0, "ess_per_k": 0.5,
             "parameters": 10, "images": 20, "draws": 100, "seed": 1, "machine": "test machine",
             "date": "2026-12-05", "command": "python -m experiments.snr runs/x/stage1"}
            for estimator in ("standard", "stl", "dreg") for network in ("inference", "generative")
            for k in (1, 10, 50, 100)]


def test_the_page_s_slopes_follow_the_data():
    page = (ROOT / "docs" / "snr.md").read_text()
    text = pages.render(page, [], rows_for("IWAE, k = 50, stage 1", 4, 0.3))
    assert "| stage 1 | inference, DReG | +0.30 ± 0.00 | +0.30 ± 0.00 | – |" in text
    changed = pages.render(page, [], rows_for("IWAE, k = 50, stage 1", 4, 0.2))
    assert "| stage 1 | inference, DReG | +0.20 ± 0.00 | +0.20 ± 0.00 | – |" in changed


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
    (["--groups", "3", "--draws", "5"], "half of --draws"),
    (["--control", "0.01"], "or measure the Gaussian control alone"),
    (["--ks", "0"], "at least 1"),
    (["--ks", "100000000"], "GiB"),
])
def test_bad_input_is_refused_before_any_work(workspace, tmp_path, args, phrase):
    out = tmp_path / "snr.csv"
    with pytest.raises(UserError, match=phrase):
        snr.main([str(workspace / "ckpts"), "--data-root", str(workspace / "data"), "--results", str(out), *args])
    assert not out.exists()


def test_a_folder_without_a_vae_is_refused(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at .*mnist_vae.pt: run `python train.py --model vae"):
        snr.main([str(tmp_path), "--results", str(tmp_path / "snr.csv")])
    with pytest.raises(UserError, match="name a VAE's checkpoint folder .* or measure the Gaussian control alone"):
        snr.main(["--results", str(tmp_path / "snr.csv")])


def test_a_new_measurement_of_a_checkpoint_replaces_its_rows_and_keeps_the_others(tmp_path):
    data = tmp_path / "snr.csv"
    snr_data.replace(rows_for("stage 1", 4, 0.3) + rows_for("stage 4", 121, 0.3), data)
    snr_data.replace(rows_for("stage 1", 4, 0.2), data)
    kept = snr_data.read(data)
    assert len(kept) == 2 * len(rows_for("stage 1", 4, 0.2))
    assert [row["snr"] for row in kept if row["checkpoint"] == "stage 1"] == pytest.approx(
        [row["snr"] for row in rows_for("stage 1", 4, 0.2)], rel=1e-5)
    assert {row["checkpoint"] for row in kept} == {"stage 1", "stage 4"}
