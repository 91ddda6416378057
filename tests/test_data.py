import shutil
from pathlib import Path

import pytest
import torch
from torchvision import datasets

import data
from config import UserError
from conftest import TEST_COUNT, TRAIN_COUNT, write_idx


def test_loads_both_splits_through_torchvision(data_root):
    dataset = data.load("mnist", data_root, torch.device("cpu"))
    assert dataset.train_images.shape == (TRAIN_COUNT, 28, 28) and dataset.train_images.dtype == torch.uint8
    assert dataset.test_images.shape == (TEST_COUNT, 28, 28)
    assert torch.equal(dataset.train_labels, torch.arange(TRAIN_COUNT) % 10)
    assert dataset.classes[0] == "zero" and len(dataset.classes) == 10
    assert dataset.train_images[3, 6:14, 4:24].eq(255).all()  # class 3's bar, as written


def test_to_float_is_bit_identical_to_float_over_255_for_every_pixel_value():
    pixels = torch.arange(256, dtype=torch.uint8)
    converted = data.to_float(pixels)
    assert converted.dtype == torch.float32
    assert torch.equal(converted, pixels.float() / 255)  # the conversion the loss history was recorded with


def test_batches_cover_every_image_once_including_the_last_partial_batch(data_root):
    images = data.load("mnist", data_root, torch.device("cpu")).train_images
    torch.manual_seed(0)
    chunks = list(data.batches(images, 128, shuffle=True))
    assert [len(chunk) for chunk in chunks] == [128, 128, 44]
    assert chunks[0].dtype == torch.float32 and 0 <= chunks[0].min() and chunks[0].max() <= 1
    seen = torch.cat(chunks).mul(255).round().to(torch.uint8)
    assert torch.equal(seen.flatten(1).sort(0).values, images.flatten(1).sort(0).values)  # a permutation
    in_order = torch.cat(list(data.batches(images, 128, shuffle=False))).mul(255).round().to(torch.uint8)
    assert torch.equal(in_order, images)


def _failing_download(self):
    raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -3]>")


def test_offline_without_data_names_the_dataset_the_folder_and_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "download", _failing_download)
    with pytest.raises(UserError) as error:
        data.load("mnist", tmp_path, torch.device("cpu"))
    message = str(error.value)
    assert "mnist" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "connect" in message and "--dataset fashion-mnist" in message and "\n" not in message


def test_fashion_mnist_offline_without_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.FashionMNIST, "download", _failing_download)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(UserError, match="apt install dataset-fashion-mnist"):
        data.load("fashion-mnist", tmp_path / "data", torch.device("cpu"))


def test_fashion_mnist_is_found_in_the_debian_folder_without_a_download(tmp_path, monkeypatch):
    debian = write_idx(tmp_path / "debian", gz=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setattr(datasets.FashionMNIST, "download", _failing_download)
    dataset = data.load("fashion-mnist", tmp_path / "data", torch.device("cpu"))
    assert dataset.test_images.shape == (TEST_COUNT, 28, 28)
    assert dataset.classes[9] == "Ankle boot"
    assert not list((tmp_path / "data" / "FashionMNIST" / "raw").glob("tmp*"))  # no scratch folder left


@pytest.mark.parametrize("name, cut, split", [
    ("train-images-idx3-ubyte", lambda payload: payload[:-500], "train"),  # truncated
    ("t10k-labels-idx1-ubyte", lambda payload: payload + b"x", "test"),  # longer than its header says
    ("train-labels-idx1-ubyte", lambda payload: payload[:6], "train"),  # truncated inside its header
    ("t10k-images-idx3-ubyte", lambda payload: b"PK" + payload[2:], "test"),  # not an IDX file of unsigned bytes
])
def test_a_damaged_idx_file_is_one_line_and_nothing_is_deleted(data_root, name, cut, split):
    raw = data_root / "MNIST" / "raw"
    path = raw / name
    path.write_bytes(cut(path.read_bytes()))
    before = sorted(raw.iterdir())
    with pytest.raises(UserError) as error:
        data.load("mnist", data_root, torch.device("cpu"))
    message = str(error.value)
    assert message.startswith(f"mnist: the {split} IDX files in {raw} are damaged (") and "\n" not in message
    assert not message.startswith(f"mnist: the {split} IDX files in {raw} are damaged ()")  # a cause, named
    assert message.endswith("; put good copies there (on a connected machine, move them away and rerun: they are "
                            "downloaded again)")
    assert sorted(raw.iterdir()) == before


def test_images_and_labels_that_disagree_in_count(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, test_count=100)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(write_idx(tmp_path / "other", test_count=90).joinpath(
        "t10k-labels-idx1-ubyte").read_bytes())
    with pytest.raises(UserError, match="the test IDX files .* hold \\(100, 28, 28\\) images and 90 labels"):
        data.load("mnist", tmp_path, torch.device("cpu"))


def test_a_data_root_that_cannot_be_written_is_named_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "download", _failing_download)
    (tmp_path / "data").write_text("")
    with pytest.raises(UserError, match=f"cannot write to {tmp_path / 'data' / 'MNIST' / 'raw'} .*with --data-root"):
        data.load("mnist", tmp_path / "data", torch.device("cpu"))


def test_gzipped_files_put_in_the_raw_folder_by_hand_are_used_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "download", _failing_download)
    write_idx(tmp_path / "MNIST" / "raw", gz=True)  # .gz only: what a user copies in when the download fails
    dataset = data.load("mnist", tmp_path, torch.device("cpu"))
    assert dataset.train_images.shape == (TRAIN_COUNT, 28, 28) and not dataset.resample


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the project's copy of MNIST is not beside this checkout")
def test_real_mnist_from_the_shared_gz_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "download", _failing_download)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in SHARED_MNIST.glob("*.gz"):
        shutil.copy(archive, raw)  # never unpacked where it lies: ../shared is read-only
    dataset = data.load("mnist", tmp_path, torch.device("cpu"))
    assert dataset.train_labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert dataset.test_labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_dynamic_binarisation_fixes_the_test_set_and_redraws_training_batches(data_root):
    grey = data.load("mnist", data_root, torch.device("cpu"))
    first, second = (data.load("mnist", data_root, torch.device("cpu"), "dynamic") for _ in range(2))
    assert set(first.test_images.unique().tolist()) == {0, 255} and torch.equal(first.test_images, second.test_images)
    assert torch.equal(first.train_images, grey.train_images) and first.resample  # drawn per batch instead
    batches = [torch.cat(list(data.batches(first.train_images, 64, shuffle=False, resample=True))) for _ in range(2)]
    assert set(batches[0].unique().tolist()) == {0.0, 1.0} and not torch.equal(*batches)
    bright = grey.train_images.float() / 255 > 0.99
    assert batches[0][bright].eq(1).float().mean() > 0.98  # white pixels stay white: intensity is the probability


def test_dynamic_binarisation_draws_each_pixel_with_its_intensity_as_the_probability():
    torch.manual_seed(0)
    intensities = torch.arange(256, dtype=torch.uint8).repeat(4000, 1)  # every grey level, 4,000 times
    pixels = torch.cat(list(data.batches(intensities, 1000, shuffle=False, resample=True)))
    assert pixels.dtype == torch.float32 and set(pixels.unique().tolist()) == {0.0, 1.0}
    frequency = pixels.mean(0)
    assert frequency[0] == 0 and frequency[255] == 1  # black stays black, white stays white
    standard_error = (frequency * (1 - frequency) / 4000).sqrt().clamp(min=1e-3)
    assert ((frequency - torch.arange(256) / 255).abs() < 5 * standard_error).all()


def test_static_binarisation_draws_both_splits_once(data_root):
    first, second = (data.load("mnist", data_root, torch.device("cpu"), "static") for _ in range(2))
    assert set(first.train_images.unique().tolist()) == {0, 255} and not first.resample
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_images, second.test_images)
