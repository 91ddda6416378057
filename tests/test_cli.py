import pytest
import torch

import cli
from cli import UserError


def test_run_turns_user_errors_into_one_line_and_a_nonzero_exit():
    def main():
        raise UserError("something the user can fix")

    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    assert exit_info.value.code == "error: something the user can fix"


@pytest.mark.parametrize("name, phrase", [
    ("tpu", "unknown device 'tpu': use auto, cpu, cuda or mps"),
    ("cuda", "--device cuda: CUDA is not available on this machine; use --device cpu"),
    ("cuda:1", "--device cuda:1: CUDA is not available"),
])
def test_a_device_this_machine_lacks_is_refused_before_any_work(monkeypatch, name, phrase):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=phrase):
        cli.resolve_device(name)


def test_auto_is_the_cpu_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert cli.resolve_device("auto") == torch.device("cpu") == cli.resolve_device("cpu")
