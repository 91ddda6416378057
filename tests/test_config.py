import pytest

import config
from config import UserError

ALL_KEYS = tuple(config.defaults())


def test_defaults_and_overrides():
    cfg, overrides = config.parse(ALL_KEYS, ["--epochs", "10", "--latent-dims", "8", "--dataset", "fashion-mnist"])
    assert overrides == {"epochs": 10, "latent_dims": 8, "dataset": "fashion-mnist"}
    assert (cfg.epochs, cfg.latent_dims, cfg.batch_size, cfg.learning_rate, cfg.seed) == (10, 8, 512, 3e-4, 1337)
    assert config.parse(ALL_KEYS, ["--resume"])[0].resume is True
    assert config.parse(ALL_KEYS, ["--resume", "false"])[0].resume is False


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["--epochs", "0"], "--epochs must be positive"),
        (["--batch-size", "-4"], "--batch-size must be positive"),
        (["--latent-dims", "0"], "--latent-dims must be positive"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
        (["--learning-rate", "nan"], "--learning-rate must be positive"),
        (["--model", "gan"], "unknown model 'gan'"),
        (["--dataset", "cifar"], "unknown dataset 'cifar'"),
        (["--likelihood", "poisson"], "unknown likelihood"),
        (["--start", "12"], "--start must be a class index"),
    ],
)
def test_bad_values_are_refused(argv, phrase):
    with pytest.raises(UserError, match=phrase):
        config.parse(ALL_KEYS, argv)


def test_unknown_keys_and_malformed_numbers_exit_with_usage_error(capsys):
    for argv in (["--epochz", "3"], ["--epochs", "three"]):
        with pytest.raises(SystemExit) as exit_info:
            config.parse(ALL_KEYS, argv)
        assert exit_info.value.code == 2
    assert "unrecognized arguments: --epochz" in capsys.readouterr().err


def test_a_script_only_accepts_its_own_keys():
    with pytest.raises(SystemExit):
        config.parse(("dataset",), ["--epochs", "3"])


def test_merge_keeps_the_checkpoints_model_but_this_machines_paths():
    stored = {"latent_dims": 8, "device": "cuda", "plot_dir": "/elsewhere", "unknown_future_key": 1}
    cfg = config.merge(stored, {"plot_dir": "mine"})
    assert cfg.latent_dims == 8 and cfg.device == "auto" and cfg.plot_dir == "mine"
    assert not hasattr(cfg, "unknown_future_key")


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with config.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind
    with config.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]


def test_run_turns_user_errors_into_one_line_and_a_nonzero_exit():
    def main():
        raise UserError("something the user can fix")

    with pytest.raises(SystemExit) as exit_info:
        config.run(main)
    assert exit_info.value.code == "error: something the user can fix"
