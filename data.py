"""MNIST and Fashion-MNIST as uint8 tensors on the training device, batches cut by indexing (no per-sample work).

torchvision reads or downloads the IDX files; offline, gzipped ones in <root>/<MNIST|FashionMNIST>/raw/ or Debian's
Fashion-MNIST package are unpacked. Binarised (Burda et al. 2015): `dynamic` redraws each training pixel as
Bernoulli(intensity) every batch and the test set once, the same every run; `static` binarises both splits once.
"""
import contextlib
import io
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from cli import UserError
from files import check_writable

DATASET_CLASSES = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}
# Debian's package dataset-fashion-mnist installs the four IDX .gz files here: the offline way in.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BINARIZE_SEEDS = {"train": 1, "test": 2}  # the fixed draws of a binarised split: the same every run, on any device


def load(name, root, device, binarize="none"):
    """SimpleNamespace(train_images, train_labels, test_images, test_labels, classes, resample): images uint8
    (N, 28, 28), 0 and 255 where binarised; labels int64 (N,); resample for --binarize dynamic."""
    dataset_class = DATASET_CLASSES[name]
    raw_folder = Path(root) / dataset_class.__name__ / "raw"
    if not _all_files_present(dataset_class, raw_folder):
        check_writable(raw_folder, "--data-root")  # the files are about to be unpacked or downloaded there
        _extract_archives(dataset_class, raw_folder, raw_folder)
    if name == "fashion-mnist" and not _all_files_present(dataset_class, raw_folder) and DEBIAN_FASHION_MNIST.is_dir():
        _extract_archives(dataset_class, DEBIAN_FASHION_MNIST, raw_folder)
    if not _all_files_present(dataset_class, raw_folder):
        _download(name, dataset_class, root, raw_folder)
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = dataset_class(root, train=train, download=False)
        except Exception as error:  # torchvision reports a damaged IDX file by assert, bad offset or failed reshape
            cause = str(error) or type(error).__name__  # torchvision's asserts say nothing
            raise UserError(f"{name}: the {split} IDX files in {raw_folder} are damaged ({cause}); put good copies "
                            "there (on a connected machine, move them away and rerun: they are downloaded again)") from None
        if dataset.data.shape[1:] != (28, 28) or len(dataset.data) != len(dataset.targets) or len(dataset.data) == 0:
            raise UserError(
                f"{name}: the {split} IDX files in {raw_folder} hold {tuple(dataset.data.shape)} images and "
                f"{len(dataset.targets)} labels; expected matching counts of 28x28 images"
            )
        splits[split] = dataset
    images = {split: dataset.data for split, dataset in splits.items()}
    for split in {"none": (), "dynamic": ("test",), "static": ("train", "test")}[binarize]:  # drawn once here
        images[split] = binarized(images[split], BINARIZE_SEEDS[split])
    return SimpleNamespace(
        train_images=images["train"].to(device),
        train_labels=splits["train"].targets.to(device),
        test_images=images["test"].to(device),
        test_labels=splits["test"].targets.to(device),
        classes=[label.split(" - ")[-1] for label in dataset_class.classes],  # MNIST's "0 - zero" -> "zero"
        resample=binarize == "dynamic",
    )


def binarized(images, seed):
    """Each pixel drawn once as 255 with probability intensity / 255, else 0, on the CPU: the same on any device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(to_float(images.cpu()), generator=generator).mul_(255).to(torch.uint8)


def _idx_names(dataset_class):
    return [filename.removesuffix(".gz") for filename, _ in dataset_class.resources]


def _all_files_present(dataset_class, raw_folder):
    return all((raw_folder / name).is_file() for name in _idx_names(dataset_class))


def _extract_archives(dataset_class, source, raw_folder):
    """Unpack the IDX .gz files found in `source` that raw_folder lacks, whatever their checksum."""
    raw_folder.mkdir(parents=True, exist_ok=True)
    # Extract into a scratch folder, then move: an interrupted run never leaves a truncated file behind.
    with tempfile.TemporaryDirectory(dir=raw_folder) as scratch:
        for name in _idx_names(dataset_class):
            archive = source / f"{name}.gz"
            if archive.is_file() and not (raw_folder / name).is_file():
                extract_archive(str(archive), scratch)
                os.replace(Path(scratch) / name, raw_folder / name)


def _download(name, dataset_class, root, raw_folder):
    print(f"{name}: downloading to {raw_folder} ...", flush=True)
    chatter = io.StringIO()  # torchvision prints each failed mirror; the message below says it once
    try:
        with contextlib.redirect_stdout(chatter):
            dataset_class(root, train=True, download=True)
    except Exception:
        ways_out = [
            "connect to the internet and rerun",
            f"or put the four IDX files ({', '.join(_idx_names(dataset_class))}, gzipped or not) in {raw_folder}",
        ]
        if name == "fashion-mnist":
            ways_out.append(f"or `apt install dataset-fashion-mnist` (files in {DEBIAN_FASHION_MNIST})")
        else:
            ways_out.append("or run offline with --dataset fashion-mnist after `apt install dataset-fashion-mnist`")
        raise UserError(f"{name} is not in {raw_folder} and could not be downloaded: {'; '.join(ways_out)}") from None


def to_float(images):
    """uint8 images -> float32 in [0, 1] on their device, bit-identical to float() / 255."""
    # Dividing in place allocates one float tensor; torch.div(images, 255) makes a float copy first on CPU.
    return images.float().div_(255)


def batches(images, batch_size, shuffle, resample=False):
    """Float batches (B, 28, 28) in [0, 1]; with resample, each pixel drawn afresh as 0 or 1 (dynamic binarisation)."""
    count = len(images)
    order = torch.randperm(count, device=images.device) if shuffle else None
    for start in range(0, count, batch_size):
        if shuffle:  # index_select copies whole rows, where images[order] gathers byte by byte
            chunk = images.index_select(0, order[start : start + batch_size])
        else:
            chunk = images[start : start + batch_size]
        yield torch.bernoulli(to_float(chunk)) if resample else to_float(chunk)
