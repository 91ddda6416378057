"""visualize.py in-process: what it refuses before writing, and a failed write that leaves the old files whole."""
import errno
import os

import imageio.v3 as iio

import checkpoints
import config
import explorer
import visualize
from conftest import full_disk, grid_size, png_size, run_main
from visualize import STILL_STEPS


def run_visualize(folder, *args):
    return run_main(visualize, "--data-root", folder / "data", "--ckpt-dir", folder / "ckpts",
                    "--plot-dir", folder / "out", *args)


def without_class(folder, label):
    """Rewrite the tiny test split of `folder` with every image of class `label` relabelled as the next class."""
    raw = folder / "data" / "MNIST" / "raw"
    labels = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    labels[8:] = bytes((value + 1) % 10 if value == label else value for value in labels[8:])
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))


def test_a_class_missing_from_the_test_set(scratch):
    without_class(scratch, 5)
    message = run_visualize(scratch, "--start", "5")
    assert message.startswith("error: the test set has no image of class 5 (it has classes 0, 1, 2, 3, 4, 6, 7, 8, 9)")
    assert not (scratch / "out").exists() or not list((scratch / "out").iterdir())  # refused before any file
    assert run_visualize(scratch, "--model", "vae") is None  # 0 -> 9 needs neither class 5 nor a full still
    assert png_size(scratch / "out" / "mnist_vae_interpolations.png") == grid_size(STILL_STEPS, 9)  # 9 classes, 9 rows


def test_a_full_disk_keeps_the_previous_gif_still_and_page(scratch, monkeypatch):
    assert run_visualize(scratch, "--model", "vae") is None
    outputs = [scratch / "out" / name for name in ("mnist_vae_interpolation_0_to_9.gif", "mnist_vae_interpolations.png",
                                                   "mnist_vae_explorer.html")]
    before = [path.read_bytes() for path in outputs]

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(iio, "imwrite", no_space)
    message = run_visualize(scratch, "--model", "vae")
    assert message == (f"error: could not write {outputs[0]} (No space left on device); "
                       f"not updated: {', '.join(map(str, outputs))}")
    assert [path.read_bytes() for path in outputs] == before
    assert sorted(path.name for path in (scratch / "out").iterdir()) == sorted(path.name for path in outputs)


def test_a_plot_folder_that_is_a_file_is_refused_before_any_work(scratch):
    (scratch / "out").write_text("")
    assert run_visualize(scratch) == f"error: cannot write to {scratch / 'out'} (File exists); choose another folder with --plot-dir"


def test_a_plot_folder_without_room_is_refused_before_any_work_by_visualize_and_test(scratch, monkeypatch, capsys):
    import test as test_script

    cfg = config.parse(("ckpt_dir",), ["--ckpt-dir", str(scratch / "ckpts")])[0]
    needed = sum(visualize.INTERPOLATION_BYTES + explorer.expected_size(checkpoints.load(cfg, name, {}, "cpu").model)
                 for name in config.MODELS)
    full_disk(monkeypatch, free=500_000)
    message = run_visualize(scratch)
    assert message == (f"error: not enough space in {scratch / 'out'}: about {needed / 1e6:.1f}"
                       " MB is needed, 500.0 kB is free; free some space or choose another folder with --plot-dir")
    message = run_main(test_script, "--data-root", scratch / "data", "--ckpt-dir", scratch / "ckpts", "--plot-dir",
                       scratch / "out", "--model", "vae")
    assert message.startswith(f"error: not enough space in {scratch / 'out'}: about 3.0 MB is needed")
    assert capsys.readouterr().out == "" and list((scratch / "out").iterdir()) == []  # nothing measured or written
