"""Latent interpolations: decode evenly spaced codes between a test image of one class and one of another.

Per model: a GIF from --start to --end and back, a still with one row per pair of neighbouring classes
(0 -> 1, 1 -> 2, ..., 9 -> 0) for a README or a paper, and the explorer, a page that decodes under the pointer.

    python visualize.py                          # class 0 -> class 9, both models, MNIST
    python visualize.py --start 3 --end 8 --dataset fashion-mnist
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import shlex
import sys

import imageio.v3 as iio
import torch
import torch.nn.functional as F

import checkpoints
import config
import data
import explorer
from cli import UserError
from files import atomic_paths, check_writable
from metrics import encode_all
from plots import output_path, save_grid

STEPS = 100  # decoded points between the two codes; the GIF plays them forward then back
UPSCALE = 8  # a 28-pixel digit becomes 224 pixels, visible on any screen
FRAME_MS = 40  # 25 frames per second
STILL_STEPS = 10  # images per row of the interpolations still
# Room each model's GIF and still need, checked before any work: 1.2 to 2.0 MB on MNIST and Fashion-MNIST.
INTERPOLATION_BYTES = 4_000_000


def first_of_class(images, labels, label):
    """The first test image of a class, (1, 28, 28) uint8."""
    matches = (labels == label).nonzero()
    if len(matches) == 0:
        present = ", ".join(map(str, labels.unique().tolist()))
        raise UserError(f"the test set has no image of class {label} (it has classes {present}); choose --start and --end among those")
    return images[matches[0]]


@torch.inference_mode()
def interpolate(model, start_image, end_image, steps=STEPS):
    """Images (steps, 1, 28, 28) decoded from codes evenly spaced between the two images' codes."""
    z_start, z_end = model.encode(data.to_float(torch.cat([start_image, end_image])))  # (latent,) each
    weights = torch.linspace(0, 1, steps, device=z_start.device)[:, None]  # (steps, 1)
    return model.decode((1 - weights) * z_start + weights * z_end)


def gif_frames(images):
    """uint8 frames (2 * steps - 2, H, W): upscaled, forward then back.

    The way back skips both end images, which the way forward already shows, so the loop has no stutter.
    """
    big = F.interpolate(images, scale_factor=UPSCALE, mode="nearest")[:, 0]  # (steps, 224, 224)
    frames = torch.cat([big, big[1:-1].flip(0)])
    return frames.mul(255).round().to(torch.uint8).cpu().numpy()


def interpolation_rows(model, images, labels, steps=STILL_STEPS):
    """Images (classes * steps, 1, 28, 28): a row from the first image of each class in the test set to that of the
    next class present (0 -> 1, ..., 9 -> 0 when all ten are there)."""
    classes = labels.unique().tolist()
    firsts = [first_of_class(images, labels, label) for label in classes]
    return torch.cat([interpolate(model, firsts[index], firsts[(index + 1) % len(classes)], steps)
                      for index in range(len(classes))])


def main():
    keys = ("model", "dataset", "device", "start", "end", "data_root", "ckpt_dir", "plot_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = cli.resolve_device(cfg.device)
    names = config.models(cfg.model)
    loaded = {name: checkpoints.load(cfg, name, overrides, device, needs=("history",)) for name in names}
    for name, (model, _, _) in loaded.items():
        explorer.check(model, name)
    check_writable(cfg.plot_dir, "--plot-dir", needed=sum(INTERPOLATION_BYTES + explorer.expected_size(model)
                                                          for model, _, _ in loaded.values()))
    dataset = data.load(cfg.dataset, cfg.data_root, device)
    # The explorer draws the codes the latent-space figure draws: of the test set as each model was trained on it.
    binarized = {model_cfg.binarize: data.load(cfg.dataset, cfg.data_root, device, model_cfg.binarize)
                 for _, _, model_cfg in loaded.values() if model_cfg.binarize != "none"}
    start_image = first_of_class(dataset.test_images, dataset.test_labels, cfg.start)
    end_image = first_of_class(dataset.test_images, dataset.test_labels, cfg.end)
    for name, (model, checkpoint, model_cfg) in loaded.items():
        frames = gif_frames(interpolate(model, start_image, end_image))
        gif = output_path(model_cfg, name, f"interpolation_{cfg.start}_to_{cfg.end}.gif")
        still = output_path(model_cfg, name, "interpolations.png")
        page = output_path(model_cfg, name, "explorer.html")
        test_set = binarized.get(model_cfg.binarize, dataset)
        with atomic_paths([gif, still, page]) as (gif_temporary, still_temporary, page_temporary):
            # loop=0: forever. Pillow stores identical neighbouring frames once, with their durations added.
            iio.imwrite(gif_temporary, frames, duration=FRAME_MS, loop=0)
            save_grid(interpolation_rows(model, dataset.test_images, dataset.test_labels), still_temporary,
                      nrow=STILL_STEPS)
            page_temporary.write_text(explorer.page(
                model, encode_all(model, test_set.test_images), test_set.test_labels, dataset.classes,
                f"{name.upper()} on {cfg.dataset}", len(checkpoint["history"]),
                f"python visualize.py {shlex.join(sys.argv[1:])}"))
        seconds = len(frames) * FRAME_MS / 1000
        print(f"{name}: wrote {gif} ({len(frames)} frames, {seconds:.1f} s, "
              f"{dataset.classes[cfg.start]} -> {dataset.classes[cfg.end]} and back)")
        print(f"{name}: wrote {still} (one row per pair of neighbouring classes)")
        print(f"{name}: wrote {page} ({page.stat().st_size / 1e6:.1f} MB; open it in a browser)", flush=True)

if __name__ == "__main__":
    cli.run(main)
