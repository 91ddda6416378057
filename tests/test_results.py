"""The results data and the pages written from it: the pages' tables are what the data gives, and a run's
evaluated stages are added as rows."""
import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

import checkpoints
import config
from cli import UserError
from experiments import figure, pages, results, tables
from loop import make_optimizer
from checkpoints import build, model_args


def test_every_generated_table_on_the_pages_is_what_the_data_gives():
    rows = results.read()
    for page in pages.PAGES:
        text = page.read_text()
        assert pages.BEGIN.split("{}")[0] in text, f"{page} holds no generated table"
        assert pages.render(text, rows) == text, f"{page} differs from the data: run python -m experiments.pages"


def test_a_changed_figure_in_the_data_changes_the_page():
    rows = results.read()
    page = pages.PAGES[0].read_text()
    changed = [dict(row, nll=row["nll"] + 1) if row["source"] == results.PAPER else row for row in rows]
    assert pages.render(page, changed) != page


@pytest.mark.parametrize("name", sorted(tables.TABLES))
def test_every_generated_table_changes_when_the_data_does(name):
    rows = results.read()
    moved = [dict(row, nll=row["nll"] + 0.5, date="2027-01-01")
             if row["source"] == results.THIS_REPO else row for row in rows]
    assert tables.TABLES[name](rows) != tables.TABLES[name](moved)


def test_the_figure_is_drawn_from_the_data(tmp_path):
    rows = results.read()
    moved = [dict(row, nll=row["nll"] - 1) if row["source"] == results.THIS_REPO else row for row in rows]
    figure.figure(rows, tmp_path / "a.png")
    figure.figure(moved, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()


# Two-decimal figures a page may quote from a paper's text rather than from the data, each with its source.
QUOTED = {"0.01": "Burda et al. 2015, section 5.2: the active-unit threshold",
          "0.06": "Burda et al. 2015, Appendix C: removing the inactive units moved the log-likelihood by less"}


def _outside_generated_blocks(text):
    pattern = re.escape(pages.BEGIN).replace(r"\{\}", r"[\w-]+") + r".*?" + re.escape(pages.END)
    return re.sub(pattern, "", text, flags=re.S)


def test_every_two_decimal_figure_on_the_results_pages_is_in_the_data_or_generated():
    rows = results.read()
    in_data = {f"{value:.2f}" for row in rows for value in row.values() if isinstance(value, float)}
    readme = pages.PAGES[0].read_text()
    table1_part = readme[readme.index("**Burda et al.'s Table 1**"):readme.index("## Layout")]
    for name, text in (("README.md", table1_part), ("docs/literature.md", pages.PAGES[1].read_text())):
        for figure_text in re.findall(r"(?<![\d.])\d+\.\d{2}(?![\d])", _outside_generated_blocks(text)):
            assert figure_text in in_data or figure_text in QUOTED, f"{name}: {figure_text} is neither in the data " \
                                                                     "nor generated"


def stage_folder(folder, stage, nll, iw_samples=5000):
    """A stage folder as the table's command leaves it: a real (tiny) checkpoint of that many epochs, and metrics."""
    folder = folder / f"stage{stage}"
    cfg = SimpleNamespace(**{**config.defaults(), **config.BURDA2015, "hidden_dims": 8, "latent_dims": 2,
                             "objective": "iwae", "k": 5, "batch_size": 20, "adam_eps": 1.2755e-07,
                             "init": "glorot-mean", "seed": 7, "ckpt_dir": str(folder)})
    model = build("vae", model_args(cfg))
    optimizer = make_optimizer(model, 1e-3, torch.device("cpu"), cfg.adam_eps, cfg.adam_beta1)
    history = [{"epoch": epoch, "seconds": 30.0} for epoch in range(sum(3 ** i for i in range(stage + 1)))]
    checkpoints.save(cfg, "vae", model, optimizer, history)
    (folder / "mnist_vae_metrics.json").write_text(json.dumps({
        "iw_nll_nats": nll, "iw_nll_se": 0.2468, "negative_elbo_nats": nll + 5.004, "negative_elbo_se": 0.271,
        "active_units": 21, "iw_samples": iw_samples}))


def evaluated_rows(run, machine="2-core test machine", note="one thread"):
    return [row for row in (results.stage_row(folder, machine, note) for folder in results.stage_folders(run)) if row]


def test_each_evaluated_stage_of_a_run_is_recorded_once(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(",".join(results.COLUMNS) + "\n")
    run = tmp_path / "run"
    stage_folder(run, 0, 150.123)
    stage_folder(run, 1, 110.456)
    (run / "stage2").mkdir()  # trained, not yet evaluated: no row
    added = results.record(evaluated_rows(run), data)
    assert [(row["stage"], row["epochs"], row["nll"], row["nll_se"], row["neg_elbo"], row["seed"]) for row in added] == [
        (0, 1, 150.12, 0.25, 155.13, 7), (1, 4, 110.46, 0.25, 115.46, 7)]
    row = results.read(data)[1]
    assert row["command"] == ("python -m experiments.burda2015 iwae-k5 --stages 2 --seeds 7 --batch-size 20 "
                              "--adam-eps 1.2755e-07 --init glorot-mean")
    assert row["train_minutes"] == 2.0 and row["active_units"] == "21" and row["machine"] == "2-core test machine"
    assert row["precision"] == "float32"
    assert results.command(dict(row, precision="bfloat16")) == row["command"] + " --bf16"
    assert results.setting_name(dict(row, precision="bfloat16")).endswith(", seed 7, bfloat16")
    assert results.record(evaluated_rows(run), data) == []  # already there
    assert len(results.read(data)) == 2


def test_a_bound_with_another_k_or_a_damaged_metrics_file_is_one_line(tmp_path):
    stage_folder(tmp_path / "run", 4, 90.0, iw_samples=100)
    with pytest.raises(UserError, match="k = 100; the table's is k = 5000"):
        evaluated_rows(tmp_path / "run")
    (tmp_path / "run" / "stage4" / "mnist_vae_metrics.json").write_text('{"iw_nll')
    with pytest.raises(UserError, match="stage4/mnist_vae_metrics.json is damaged .*; delete it and rerun"):
        evaluated_rows(tmp_path / "run")


def test_a_stage_s_removal_check_is_recorded_with_it(tmp_path):
    stage_folder(tmp_path / "run", 4, 90.5)
    metrics_file = tmp_path / "run" / "stage4" / "mnist_vae_metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics.update({"units_removed": [7], "removal_difference_nats": -0.00472, "removal_difference_se": 0.01097})
    metrics_file.write_text(json.dumps(metrics))
    (row,) = evaluated_rows(tmp_path / "run")
    assert (row["units_removed"], row["removal_nats"], row["removal_se"]) == ("7", -0.005, 0.011)
    assert (row["active_statistic"], row["kl_active_units"], row["kl_removal_nats"]) == ("A_u", "", None)
    assert "| 21; – | -0.005 ± 0.011 | – |" in tables.removal_checks([dict(row, stage=4)])
    # the KL count and its own removal check, where test.py measured them
    metrics.update({"kl_active_units_per_layer": [97, 8], "kl_units_removed": [3, 42],
                    "kl_removal_difference_nats": 0.4561, "kl_removal_difference_se": 0.0312})
    metrics_file.write_text(json.dumps(metrics))
    (row,) = evaluated_rows(tmp_path / "run")
    assert (row["kl_active_units"], row["kl_removal_nats"], row["kl_removal_se"]) == ("97+8", 0.456, 0.031)
    assert "| 21; 97+8 | -0.005 ± 0.011 | +0.456 ± 0.031 |" in tables.removal_checks([dict(row, stage=4)])


def test_a_two_layer_row_is_in_the_two_layer_half_only():
    rows = results.read()
    one_layer = results.latest(rows, source=results.THIS_REPO, layers=1, objective="iwae", k=50, estimator="standard",
                               stage=4, **results.ONE_RUN, **results.SETTING)
    two_layers = dict(one_layer, layers=2, init="glorot-mean", nll=77.77, nll_se=0.21, active_units="30+9",
                      date="9999-12-31")  # the latest of its stage, whatever the data holds
    changed = tables.table1(rows + [two_layers]).splitlines()
    assert changed != tables.table1(rows).splitlines()
    assert "**77.77 ± 0.21**" in next(line for line in changed if line.startswith("| 2 layers: IWAE, k = 50 |"))
    assert "77.77" not in next(line for line in changed if line.startswith("| IWAE, k = 50 |"))
    assert "77.77" in next(line for line in tables.stages(rows + [two_layers]).splitlines()
                           if line.startswith("| 2 layers: IWAE, k = 50 |"))
    assert "77.77" not in next(line for line in tables.stages(rows + [two_layers]).splitlines()
                               if line.startswith("| IWAE, k = 50 |"))
    # another initialisation is not the two-layer half's setting: not in its tables
    torch_init = dict(two_layers, init="torch")
    assert tables.table1(rows + [torch_init]) == tables.table1(rows)


def test_a_bf16_row_stands_beside_its_float32_row_with_their_difference():
    rows = results.read()
    float32 = results.latest(rows, source=results.THIS_REPO, layers=1, objective="iwae", k=50, estimator="standard",
                             stage=4, **results.ONE_RUN, **results.SETTING)
    bf16 = dict(float32, precision=results.PRECISION[True], nll=float32["nll"] + 0.3)
    assert len(tables.precisions([float32]).splitlines()) == 2  # the header alone
    line = tables.precisions([float32, bf16]).splitlines()[-1]
    assert line.endswith(f"| {float32['nll']:.2f} ± {float32['nll_se']:.2f} | {bf16['nll']:.2f} ± "
                         f"{bf16['nll_se']:.2f} | +0.30 |")


@pytest.mark.parametrize("damage, phrase", [
    (lambda text: text[:-9], "its last line is cut short"),
    (lambda text: text[:-1] + ",extra\n", f"{len(results.COLUMNS) + 1} fields where the header names "
                                             f"{len(results.COLUMNS)}"),
    (lambda text: text.rsplit(",", 2)[0] + "," + text.rsplit(",", 1)[1], f"{len(results.COLUMNS) - 1} fields where "
                                                                          f"the header names {len(results.COLUMNS)}"),
    (lambda text: text + "\0" * 64, "it holds a NUL byte"),
    (lambda text: text.replace("86.76", "nan", 1), "its nll is nan, not a finite number"),
    (lambda text: text.replace("86.76", "86.7.6", 1), "its nll is '86.7.6', not a number")])
def test_damaged_results_data_is_refused_naming_the_line_and_never_rewritten(tmp_path, damage, phrase):
    path = tmp_path / "data.csv"
    path.write_text(damage(results.DATA.read_text()))
    before = path.read_bytes()
    with pytest.raises(UserError, match=rf"{path} is damaged at line \d+: {re.escape(phrase)}"):
        results.read(path)
    with pytest.raises(UserError):
        results.record([dict(results.read()[-1], seed=99)], path)
    assert path.read_bytes() == before


def test_a_row_that_would_not_read_back_is_never_written(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(results.DATA.read_bytes())
    with pytest.raises(UserError, match=rf"{path} was left as it was: its new line \d+ would not read back \(its nll"):
        results.record([dict(results.read()[-1], seed=99, nll=math.nan)], path)
    assert path.read_bytes() == results.DATA.read_bytes()


@pytest.mark.parametrize("figure", [math.nan, math.inf, "91.2"])
def test_a_stage_whose_bound_is_not_a_finite_number_is_refused_and_not_recorded(tmp_path, figure):
    stage_folder(tmp_path / "run", 1, 90.0)
    metrics_file = tmp_path / "run" / "stage1" / "mnist_vae_metrics.json"
    metrics_file.write_text(metrics_file.read_text().replace("90.0", json.dumps(figure)))
    with pytest.raises(UserError, match=rf"stage 1: {metrics_file} holds iw_nll_nats .*, not finite numbers; "
                                        "nothing is recorded for it"):
        evaluated_rows(tmp_path / "run")
