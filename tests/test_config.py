import pytest

import config
from cli import UserError

ALL_KEYS = tuple(config.defaults())


def test_every_setting_is_a_default_with_a_help_text_in_written_order():
    settings = [name for name, value in vars(config).items()
                if not name.startswith("_") and name.islower() and isinstance(value, (bool, int, float, str))]
    assert list(config.defaults()) == settings  # a setting without its annotation would be no flag at all
    assert list(config.help_texts()) == settings
    assert all(isinstance(text, str) and text for text in config.help_texts().values())
    assert config.defaults()["batch_size"] == 512 and config.help_texts()["batch_size"] == "training mini-batch size"


def test_help_shows_each_flags_text_and_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        config.parse(("epochs", "likelihood"), ["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--epochs INT total epochs; with --resume, the epoch count to reach (default: 5)" in text
    assert "gaussian (per-pixel MSE, the reference objective) | bernoulli" in text


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
        (["--binarize", "yes"], "unknown binarize 'yes': choose one of none, dynamic, static"),
        (["--activation", "gelu"], "unknown activation 'gelu'"),
        (["--hidden-layers", "0"], "--hidden-layers must be positive"),
        (["--start", "12"], "--start must be a class index"),
        (["--epochs", "10000000000000000000"], "--epochs 10000000000000000000 is too large: at most 1,000,000"),
        (["--seed", "100000000000000000000"], "--seed 100000000000000000000 is too large"),
        (["--seed", "-1"], "--seed must be zero or positive"),
        (["--hidden-dims", "1000000000000"], "--hidden-dims 1000000000000 is too large"),
        (["--batch-size", "10000000000"], "--batch-size 10000000000 is too large"),
    ],
)
def test_bad_values_are_refused(argv, phrase):
    with pytest.raises(UserError, match=phrase):
        config.parse(ALL_KEYS, argv)


def test_binarised_data_needs_the_bernoulli_likelihood():
    with pytest.raises(UserError, match="--binarize dynamic makes 0/1 pixels, whose likelihood is Bernoulli"):
        config.parse(ALL_KEYS, ["--binarize", "dynamic"])
    cfg, _ = config.parse(ALL_KEYS, ["--binarize", "static", "--likelihood", "bernoulli"])
    assert (cfg.binarize, cfg.likelihood) == ("static", "bernoulli")


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


def test_burda_et_al_s_network_written_as_flags_parses_back_to_itself():
    """experiments/job.py passes config.BURDA2015 to train.py as flags: they must mean what the dict says."""
    cfg, overrides = config.parse(ALL_KEYS, config.as_flags(config.BURDA2015))
    assert overrides == config.BURDA2015
    assert {key: getattr(cfg, key) for key in config.BURDA2015} == config.BURDA2015


def test_a_script_may_use_its_own_defaults_and_says_so(capsys):
    cfg, overrides = config.parse(("iw_samples",), [], script_defaults={"iw_samples": 5000})
    assert cfg.iw_samples == 5000 and overrides == {}
    with pytest.raises(SystemExit):
        config.parse(("iw_samples",), ["--help"], script_defaults={"iw_samples": 5000})
    assert "(default: 5000)" in capsys.readouterr().out
