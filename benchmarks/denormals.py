"""What denormal floats cost a trained model's training step on the CPU: this project's loop (loop.train_epoch, as
train.py runs it) on a VAE checkpoint, a stage of experiments.burda2015 say, with denormals flushed to zero, as
every script runs on the CPU (speed.flush_denormals), and computed with, in paired rounds on one thread; and how many
of the decoder's output gradients are denormal.

    python -m benchmarks.denormals --ckpt-dir runs/burda2015/iwae-k50-batch100-eps1e-08/stage0
"""
import torch
from tqdm import tqdm

import checkpoints
import cli
import config
import data
from benchmarks.timing import best_of, device_name, paired_ratio, timed_rounds
from loop import make_optimizer, train_epoch

ROUNDS = 7
STEPS = 20  # training steps a round: loop.train_epoch over STEPS batches of the training set


def denormal_share(model, x):
    """The share of the decoder's output gradients, one training step on batch x, that are denormal."""
    grads = []

    def keep_grad(layer, inputs, output):
        output.register_hook(grads.append)

    hook = model.decoder[-1].register_forward_hook(keep_grad)
    loss, _, _ = model(x)
    hook.remove()
    model.zero_grad()
    loss.backward()
    grad = grads[0]
    return ((grad != 0) & (grad.abs() < torch.finfo(grad.dtype).tiny)).float().mean().item()


def main():
    keys = ("dataset", "batch_size", "data_root", "ckpt_dir")
    cfg, overrides = config.parse(keys, description=__doc__, script_defaults={"batch_size": 100})
    torch.set_num_threads(1)  # on one thread, switching the setting below governs all the work
    device = cli.resolve_device("cpu")
    model, checkpoint, model_cfg = checkpoints.load(cfg, "vae", overrides, device, needs=("optimizer", "history"))
    optimizer = make_optimizer(model, model_cfg.learning_rate, device, model_cfg.adam_eps)
    optimizer.load_state_dict(checkpoint["optimizer"])
    dataset = data.load(cfg.dataset, cfg.data_root, device, model_cfg.binarize)
    images, quiet = dataset.train_images[: STEPS * cfg.batch_size], tqdm(disable=True)

    def training(flush):
        def work():
            torch.set_flush_denormal(flush)
            train_epoch(model, optimizer, images, cfg.batch_size, quiet, resample=dataset.resample)
        return work

    torch.set_flush_denormal(False)
    share = denormal_share(model, next(data.batches(images, cfg.batch_size, shuffle=True, resample=dataset.resample)))
    training(True)()  # warm-up
    rounds = timed_rounds(device, [training(False), training(True)], ROUNDS)
    kept, flushed = (1000 * seconds / STEPS for seconds in best_of(rounds))
    median, lowest, highest = paired_ratio(rounds)
    torch.set_flush_denormal(True)
    print(f"VAE of {checkpoints.path(cfg, 'vae')} ({cli.count_of(len(checkpoint['history']), 'epoch')}, latent "
          f"{model.latent_dims}, {model.objective} k = {model.k}), batch {cfg.batch_size}; {device_name(device)}")
    print(f"denormal decoder output gradients: {share:.1%}")
    print(f"ms per training step: denormals kept {kept:.1f}, flushed {flushed:.1f}; kept/flushed {median:.2f} "
          f"(median of {ROUNDS} paired rounds; {lowest:.2f}-{highest:.2f})")


if __name__ == "__main__":
    cli.run(main)
