"""The training loop train.py runs for both models, and the test loss it reports each epoch."""
import torch

import data

EVAL_BATCH_SIZE = 2000  # large: evaluation keeps no activations for a backward pass


def make_optimizer(model, learning_rate, device, eps=1e-8, beta1=0.9):
    # Adam's fused kernel updates all parameters in one pass (faster); it agrees with the loop version to rounding.
    return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(beta1, 0.999), eps=eps,
                            fused=device.type in ("cuda", "cpu"))


def train_epoch(model, optimizer, images, batch_size, progress, bf16=False, resample=False):
    """One pass over `images` in shuffled mini-batches; returns the mean training loss per image (a tensor).
    resample: dynamic binarisation, each batch's pixels drawn afresh (data.batches). The loss is summed on the
    device and read once by the caller: no host sync inside the epoch."""
    total = torch.zeros((), device=images.device)
    for x in data.batches(images, batch_size, shuffle=True, resample=resample):  # x: (B, 28, 28)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = model(x)
        model.zero_grad()  # grads to None, as optimizer.zero_grad() does, with less Python per step
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(x)
        progress.update()
    return total / len(images)


@torch.inference_mode()
def evaluate(model, images, batch_size=EVAL_BATCH_SIZE):
    """Test loss as trained (averaged per image over all of `images`) and its parts, recon and KL, per image."""
    totals = torch.zeros(3, device=images.device)
    for x in data.batches(images, batch_size, shuffle=False):
        loss, recon, kl = model(x)
        totals += torch.stack([loss * len(x), recon.sum(), kl.sum()])
    loss, recon, kl = (totals / len(images)).tolist()  # the one host sync of the evaluation
    return {"loss": loss, "recon": recon, "kl": kl}
