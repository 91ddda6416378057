"""The training loop's promises to a GPU, checked on the CPU: no host reads inside an epoch, bf16 behind a flag."""
import math

import pytest
import torch

import config
import data
from loop import make_optimizer, train_epoch
from loop import evaluate
from checkpoints import build, model_args

CPU = torch.device("cpu")


def fresh_vae():
    torch.manual_seed(0)
    cfg = config.merge(config.defaults(), {"hidden_dims": 64})
    model = build("vae", model_args(cfg))
    return model, make_optimizer(model, cfg.learning_rate, CPU)


class Counter:
    """Stands in for the tqdm bar: counts its updates."""

    steps = 0

    def update(self):
        self.steps += 1


@pytest.fixture
def images(data_root):
    return data.load("mnist", data_root, CPU).train_images  # 300 images: 5 batches of 64, the last partial


@pytest.fixture
def host_reads(monkeypatch):
    """Counts every read of a tensor's value into Python, the calls that make a GPU wait for the host."""
    reads = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):
            reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_an_epoch_reads_nothing_back_until_the_caller_asks(images, host_reads):
    model, optimizer = fresh_vae()
    progress = Counter()
    mean_loss = train_epoch(model, optimizer, images, 64, progress)
    assert progress.steps == 5  # the bar moved once per batch, without reading the loss
    assert host_reads == []
    assert math.isfinite(mean_loss.item()) and host_reads == ["item"]  # the caller's one read per epoch
    host_reads.clear()
    evaluate(model, images, batch_size=64)
    assert host_reads == ["tolist"]  # one read for the whole evaluation


def test_bf16_autocast_is_off_by_default_and_changes_numbers_only_slightly_when_on(images):
    losses = {}
    for bf16 in (False, True):
        model, optimizer = fresh_vae()
        torch.manual_seed(1)  # the same batches and noise for both
        losses[bf16] = train_epoch(model, optimizer, images, 64, Counter(), bf16=bf16).item()
    model, optimizer = fresh_vae()
    torch.manual_seed(1)
    assert train_epoch(model, optimizer, images, 64, Counter()).item() == losses[False]  # default: fp32
    assert losses[True] != losses[False]  # bf16 really ran
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
