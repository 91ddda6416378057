"""The checkpoint format: what save() writes, load() rebuilds, and every file load() refuses, in one line."""
import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

import checkpoints
import config
from cli import UserError
from conftest import record_syncs_and_renames
from loop import make_optimizer
from checkpoints import build, model_args
from config import MODEL_ARGS

CPU = torch.device("cpu")


def saved(tmp_path, name="vae", epochs=2, **values):
    """Write a checkpoint of a small model as train.py does; returns the config it was written with."""
    cfg, _ = config.parse(tuple(config.defaults()), ["--ckpt-dir", str(tmp_path), "--hidden-dims", "16"])
    for key, value in values.items():
        setattr(cfg, key, value)
    torch.manual_seed(0)
    model = build(name, model_args(cfg))
    history = [{"epoch": epoch, "train_loss": 1.0, "test_loss": 1.0, "test_recon": 1.0, "test_kl": 0.0, "seconds": 1.0}
               for epoch in range(1, epochs + 1)]
    checkpoints.save(cfg, name, model, make_optimizer(model, cfg.learning_rate, CPU), history)
    return cfg


def rewrite(cfg, name, change):
    """Load the checkpoint as plain data, let `change` alter it, and write it back."""
    path = checkpoints.path(cfg, name)
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)


def refusal(cfg, name="vae", needs=()):
    with pytest.raises(UserError) as error:
        checkpoints.load(cfg, name, {}, CPU, needs)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_saved_model_is_rebuilt_from_its_checkpoint_alone(tmp_path):
    cfg = saved(tmp_path, latent_dims=3, likelihood="bernoulli")
    torch.manual_seed(0)
    original = build("vae", model_args(cfg))
    model, checkpoint, loaded_cfg = checkpoints.load(config.parse(("ckpt_dir",), ["--ckpt-dir", str(tmp_path)])[0],
                                                     "vae", {"iw_samples": 7}, CPU)
    assert checkpoint["model_args"] == {"latent_dims": 3, "hidden_dims": 16, "hidden_layers": 1, "activation": "relu",
                                        "likelihood": "bernoulli", "beta": 1.0, "objective": "elbo", "k": 1,
                                        "estimator": "standard", "stochastic_layers": 1, "top_latent_dims": 50,
                                        "top_hidden_dims": 100}
    assert set(checkpoint["model_args"]) == set(MODEL_ARGS)
    assert (loaded_cfg.latent_dims, loaded_cfg.likelihood, loaded_cfg.iw_samples) == (3, "bernoulli", 7)
    for key, weight in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], weight), key
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary, which is gone


def test_the_model_args_win_over_a_stored_config_that_disagrees(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: checkpoint["config"].pop("hidden_dims"))  # as from an older version
    model, _, loaded_cfg = checkpoints.load(cfg, "vae", {}, CPU)
    assert loaded_cfg.hidden_dims == 16 and model.to_latent.in_features == 16  # not today's default, 512


def test_a_checkpoint_from_before_depth_and_activation_existed_still_loads(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: [checkpoint["model_args"].pop(key) for key in ("hidden_layers", "activation")])
    model, checkpoint, loaded_cfg = checkpoints.load(cfg, "vae", {}, CPU)
    assert (loaded_cfg.hidden_layers, loaded_cfg.activation) == (1, "relu") and len(model.decoder) == 3


def test_a_checkpoint_from_before_the_k_sample_objectives_loads_as_the_elbo_with_one_sample(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: [checkpoint["model_args"].pop(key) for key in ("objective", "k", "estimator")])
    model, checkpoint, loaded_cfg = checkpoints.load(cfg, "vae", {}, CPU)
    assert (model.objective, model.k, model.estimator) == ("elbo", 1, "standard")
    assert (loaded_cfg.objective, loaded_cfg.k, loaded_cfg.estimator) == ("elbo", 1, "standard")


def test_missing_file_names_the_file_and_the_command_that_makes_it(tmp_path):
    cfg, _ = config.parse(("ckpt_dir",), ["--ckpt-dir", str(tmp_path)])
    message = refusal(cfg, "ae")
    assert f"no checkpoint at {tmp_path / 'mnist_ae.pt'}" in message
    assert "python train.py --model ae --dataset mnist" in message


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    cfg = saved(tmp_path)
    checkpoints.path(cfg, "vae").write_bytes(b"not a checkpoint at all")
    assert "is not a usable checkpoint" in refusal(cfg)
    checkpoints.path(cfg, "vae").write_bytes(checkpoints.path(saved(tmp_path), "vae").read_bytes()[:-300])
    assert "damaged" in refusal(cfg)


def test_weights_of_another_latent_size(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: checkpoint["model_args"].update(latent_dims=5))  # weights are for 2
    assert "do not fit its model_args: size mismatch for to_latent.weight: copying a param with shape torch.Size([2, 16])" in refusal(cfg)


def test_the_checkpoint_of_the_other_model(tmp_path):
    cfg = saved(tmp_path, name="ae")
    checkpoints.path(cfg, "vae").write_bytes(checkpoints.path(cfg, "ae").read_bytes())
    assert "it is a checkpoint of the AE, not the VAE" in refusal(cfg, "vae")


@pytest.mark.parametrize("change, phrase", [
    (lambda checkpoint: checkpoint.pop("weights"), "it lacks weights"),
    (lambda checkpoint: checkpoint["model_args"].pop("beta"), "its model_args are not latent_dims, hidden_dims"),
    (lambda checkpoint: checkpoint["model_args"].update(hidden_layers=2), '"decoder.4.weight", "decoder.4.bias"'),
    (lambda checkpoint: checkpoint["model_args"].update(latent_dims="2"), "its model_args hold latent_dims='2'"),
    (lambda checkpoint: checkpoint["model_args"].update(likelihood="poisson"), "unknown likelihood 'poisson'"),
    (lambda checkpoint: checkpoint["weights"].pop("to_logvar.bias"), 'Missing key(s) in state_dict: "to_logvar.bias"'),
    (lambda checkpoint: checkpoint.update(model="gan"), "its model is 'gan'"),
])
def test_what_is_wrong_is_read_from_the_contents(tmp_path, change, phrase):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", change)
    assert phrase in refusal(cfg)


def test_a_checkpoint_of_another_dataset_under_this_datasets_name(tmp_path):
    cfg = saved(tmp_path, dataset="fashion-mnist")
    mnist = config.parse(("ckpt_dir",), ["--ckpt-dir", str(tmp_path)])[0]
    checkpoints.path(mnist, "vae").write_bytes(checkpoints.path(cfg, "vae").read_bytes())  # renamed by hand
    assert "it was trained on fashion-mnist, not on mnist as its name says" in refusal(mnist)


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = saved(tmp_path)
    before = checkpoints.path(cfg, "vae").read_bytes()

    def no_space(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(UserError, match=r"could not write .*mnist_vae\.pt \(No space left on device\); not updated"):
        saved(tmp_path, epochs=5)
    monkeypatch.undo()
    assert checkpoints.path(cfg, "vae").read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_an_older_format_checkpoint_of_plain_data_still_loads(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: None)
    checkpoint = torch.load(checkpoints.path(cfg, "vae"), weights_only=True)
    torch.save(checkpoint, checkpoints.path(cfg, "vae"), _use_new_zipfile_serialization=False)
    model, _, _ = checkpoints.load(cfg, "vae", {}, CPU)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in checkpoint["weights"].items())


@pytest.mark.parametrize("hidden_dims, epochs", [(16, 1), (512, 5), (200, 121)])
def test_the_expected_size_of_a_checkpoint_is_a_little_above_its_real_size(tmp_path, hidden_dims, epochs):
    cfg, _ = config.parse(tuple(config.defaults()), ["--ckpt-dir", str(tmp_path), "--hidden-dims", str(hidden_dims)])
    model = build("vae", model_args(cfg))
    optimizer = make_optimizer(model, cfg.learning_rate, CPU)
    model(torch.rand(2, 28, 28))[0].backward()
    optimizer.step()  # as in training: Adam's two moments are in the checkpoint
    history = [{"epoch": epoch, "train_loss": 0.1, "test_loss": 0.1, "test_recon": 40.0, "test_kl": 3.0,
                "seconds": 1.5} for epoch in range(1, epochs + 1)]
    checkpoints.save(cfg, "vae", model, optimizer, history)
    real = checkpoints.path(cfg, "vae").stat().st_size
    expected = checkpoints.expected_size("vae", model_args(cfg), epochs)
    assert real <= expected <= 1.3 * real + 100_000


def test_save_syncs_the_checkpoint_before_its_rename_and_the_folder_after(tmp_path, monkeypatch):
    calls = record_syncs_and_renames(monkeypatch)
    cfg = saved(tmp_path)
    file = checkpoints.path(cfg, "vae")
    assert [what for what, _ in calls] == ["sync", "replace", "sync"]
    assert calls[0][1].parent == tmp_path and calls[0][1].name.endswith(".tmp.pt")  # the temporary, in full
    assert calls[1][1] == file and calls[2][1] == tmp_path  # then its name, then the folder's entry of it


def test_epochs_in_counts_what_a_run_would_lose(tmp_path):
    cfg = saved(tmp_path, epochs=3)
    assert checkpoints.epochs_in(cfg, "vae") == 3
    assert checkpoints.epochs_in(cfg, "ae") == 0  # no file
    checkpoints.path(cfg, "ae").write_bytes(b"damaged")
    assert checkpoints.epochs_in(cfg, "ae") == 0


def test_each_caller_gets_the_parts_it_needs_named(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: [checkpoint.pop(key) for key in ("history", "rng")])
    checkpoints.load(cfg, "vae", {}, CPU)  # visualize.py needs neither
    assert "it lacks history" in refusal(cfg, needs=("history",))
    assert "it lacks rng, history" in refusal(cfg, needs=("optimizer", "rng", "history"))


class RunsCodeWhenUnpickled:
    """Unpickling calls `function(*arguments)`: here, creating a marker file is the code it would run."""

    def __init__(self, function, *arguments):
        self.call = function, arguments

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize("container", ["zip", "older non-zip format", "bare pickle"])
@pytest.mark.parametrize("function, named", [(open, "io.open"), (os.system, "posix.system")])
def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path, function, named, container):
    cfg = saved(tmp_path)
    marker = tmp_path / "pwned"
    payload = RunsCodeWhenUnpickled(open, str(marker), "w") if function is open else \
        RunsCodeWhenUnpickled(os.system, f"touch {marker}")
    crafted = {"model": "vae", "weights": payload}
    if container == "bare pickle":  # torch.load(weights_only=False) would run it: its first unpickling reads it all
        checkpoints.path(cfg, "vae").write_bytes(pickle.dumps(crafted, protocol=2))
    else:
        torch.save(crafted, checkpoints.path(cfg, "vae"), _use_new_zipfile_serialization=container == "zip")
    message = refusal(cfg)
    assert "was refused" in message and "could run code" in message and named in message
    assert not marker.exists()


def test_resume_refuses_another_model_or_nothing_left_to_train(tmp_path):
    cfg = saved(tmp_path, epochs=2)
    for overrides, phrase in [({"latent_dims": 3, "epochs": 5}, "--latent-dims 3 (checkpoint: 2)"),
                              ({"dataset": "fashion-mnist", "epochs": 5}, "--dataset fashion-mnist (checkpoint: mnist)"),
                              ({"binarize": "dynamic", "epochs": 5}, "--binarize dynamic (checkpoint: none)"),
                              ({"epochs": 1}, "already trained for 2 epochs, more than --epochs 1; pass --epochs N with N > 2")]:
        with pytest.raises(UserError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
            checkpoints.resume(cfg, "vae", overrides, CPU)
    model, checkpoint, resumed_cfg = checkpoints.resume(cfg, "vae", {"epochs": 5, "learning_rate": 1e-3}, CPU)
    assert resumed_cfg.epochs == 5 and resumed_cfg.learning_rate == 1e-3 and len(checkpoint["history"]) == 2


def test_a_checkpoint_from_before_the_init_flag_resumes_as_torchs_initialisation(tmp_path):
    cfg = saved(tmp_path)
    rewrite(cfg, "vae", lambda checkpoint: [checkpoint["config"].pop(key) for key in ("init", "adam_beta1")])
    _, _, resumed_cfg = checkpoints.resume(cfg, "vae", {"epochs": 5, "init": "torch"}, CPU)
    assert resumed_cfg.init == "torch" and resumed_cfg.adam_beta1 == 0.9
    with pytest.raises(UserError, match=r"--init glorot \(checkpoint: torch\)"):
        checkpoints.resume(cfg, "vae", {"epochs": 5, "init": "glorot"}, CPU)
