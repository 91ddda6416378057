"""The results data and the pages written from it: the pages' tables are what the data gives, and a run's
evaluated stages are added as rows."""
import json
import math
import re
import sys
from types import SimpleNamespace

import pytest
import torch

import checkpoints
import cli
import config
from cli import UserError
from experiments import figure, pages, results, sentences, tables
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


@pytest.mark.parametrize("name", sorted(sentences.SENTENCES) + ["table1-caption"])
def test_every_generated_sentence_changes_when_the_data_does(name):
    rows = results.read()
    moved = [dict(row, nll=row["nll"] + 0.5, date="2027-01-01") if row["source"] == results.THIS_REPO else row
             for row in rows]
    assert pages.TABLES[name](rows) != pages.TABLES[name](moved)


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


def test_a_bound_with_another_k_a_damaged_metrics_file_or_no_run_folder_is_one_line(tmp_path, monkeypatch):
    stage_folder(tmp_path / "run", 4, 90.0, iw_samples=100)
    with pytest.raises(UserError, match="k = 100; the table's is k = 5000"):
        evaluated_rows(tmp_path / "run")
    (tmp_path / "run" / "stage4" / "mnist_vae_metrics.json").write_text('{"iw_nll')
    with pytest.raises(UserError, match="stage4/mnist_vae_metrics.json is damaged .*; delete it and rerun"):
        evaluated_rows(tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["results.py", str(tmp_path)])
    with pytest.raises(SystemExit, match=f"error: {tmp_path} is not a run folder: it holds no stage<i>/ folders"):
        cli.run(results.main)


def test_a_stage_s_removal_check_is_recorded_with_it(tmp_path):
    stage_folder(tmp_path / "run", 4, 90.5)
    metrics_file = tmp_path / "run" / "stage4" / "mnist_vae_metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics.update({"units_removed": [7], "removal_difference_nats": -0.00472, "removal_difference_se": 0.01097})
    metrics_file.write_text(json.dumps(metrics))
    (row,) = evaluated_rows(tmp_path / "run")
    assert (row["units_removed"], row["removal_nats"], row["removal_se"]) == ("7", -0.005, 0.011)
    assert "| 7 | −0.005 ± 0.011 |".replace("−", "-") in pages.TABLES["removal-checks"]([row])


def test_a_two_layer_row_is_in_the_two_layer_tables_only():
    rows = results.read()
    one_layer = next(row for row in rows if row["source"] == results.THIS_REPO and row["layers"] == 1
                     and row["stage"] == 4 and row["objective"] == "iwae" and row["k"] == 50
                     and row["estimator"] == "standard" and row["batch_size"] == 100)
    two_layers = dict(one_layer, layers=2, init="glorot-mean", nll=77.77, nll_se=0.21, active_units="30+9",
                      date="9999-12-31")  # the latest of its stage, whatever the data holds
    tables = {name: make(rows) for name, make in pages.TABLES.items()}
    changed = {name: make(rows + [two_layers]) for name, make in pages.TABLES.items()}
    two_layer_tables = {"two-layers", "two-layer-stages", "two-layers-table1", "two-layer-comparisons",
                        "table1-caption"}
    # the bf16 tables and the spread over seeds take rows of either depth: they change where the row is one of a pair
    both = {"precisions", "precision-comparisons", "seeds"}
    assert two_layer_tables <= {name for name in tables if tables[name] != changed[name]} <= two_layer_tables | both
    assert "two stochastic layers, batch 100, ε 1e-08, glorot-mean" in changed["two-layer-stages"]

    def iwae_k50(table):
        return next(line for line in table.splitlines() if line.startswith("| IWAE, k = 50 |"))

    assert "**77.77 ± 0.21 (30+9)** |" in iwae_k50(changed["two-layers"])
    # beside it, the latest one-layer row of the same stage and setting, or "–" where there is none
    one_layer = dict(one_layer, init="glorot-mean", nll=88.88, nll_se=0.22, active_units="31", date="9999-12-31")
    assert iwae_k50(pages.TABLES["two-layers"](rows + [two_layers, one_layer])).endswith("| 88.88 ± 0.22 (31) |")
    without = [row for row in rows if (row["layers"], row["init"], row["stage"]) != (1, "glorot-mean", 4)]
    assert iwae_k50(pages.TABLES["two-layers"](without + [two_layers])).endswith("(30+9)** | – |")
    # another initialisation is listed among the stages, not in the table
    torch_init = dict(two_layers, init="torch", nll=99.99)
    assert pages.TABLES["two-layers"](rows + [torch_init]) == tables["two-layers"]
    assert "99.99" in pages.TABLES["two-layer-stages"](rows + [torch_init])


def test_a_bf16_row_stands_beside_its_float32_row_with_their_difference_and_times():
    rows = results.read()
    float32 = results.latest(rows, source=results.THIS_REPO, layers=1, objective="iwae", k=50, estimator="standard",
                             stage=4, **results.ONE_RUN, **results.SETTING)
    bf16 = dict(float32, precision=results.PRECISION[True], nll=float32["nll"] + 0.3, train_minutes=47.5)
    bf16["command"] = results.command(bf16)
    assert tables.precisions([float32]) == "No row trained under --bf16 yet."
    line = tables.precisions([float32, bf16]).splitlines()[-1]
    assert f"{float32['nll']:.2f} ± {float32['nll_se']:.2f}" in line and f"{bf16['nll']:.2f} ±" in line
    expected = 0.3 / math.hypot(float32["nll_se"], bf16["nll_se"])
    assert "+0.30 (" in line and f"{expected:+.1f} combined SE" in line
    assert f"{float32['train_minutes']:g} min" in line and "47.5 min" in line and "--bf16" in line


def test_a_comparison_of_equal_bounds_names_no_direction():
    row = dict(results.latest(results.read(), source=results.THIS_REPO, layers=1, objective="iwae", k=50,
                              estimator="standard", stage=4, **results.ONE_RUN, **results.SETTING))
    same = dict(row, precision=results.PRECISION[True])
    said = sentences.compare(same, row)
    assert "the same to the hundredth of a nat" in said and "above" not in said and "below" not in said
    assert "0.10 nats below" in sentences.compare(dict(same, nll=row["nll"] - 0.1), row)
