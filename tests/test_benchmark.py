"""The benchmark runs end to end on tiny data and prints every figure it promises (no timing is asserted)."""
import re

from conftest import ROOT, run_python


def test_benchmark_prints_the_three_loops_the_ratios_and_the_scale_table(data_root):
    result = run_python("-m", "benchmarks.epoch", "--device", "cpu", "--data-root", data_root, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    number = r"(\d+\.\d+)"
    for label in ("(a) this project", "(b) DataLoader(ToTensor())", "(c) matrix-multiply floor"):
        assert re.search(re.escape(label) + r"\s+" + number, out), out
    ratios = re.search(rf"a/b = {number} \(train\).*\na/c = {number} \(median of \d+ rounds.*; {number} to {number}\)", out)
    assert ratios, out
    a_over_c, low, high = (float(value) for value in ratios.groups()[1:])
    assert 0 < low <= a_over_c <= high
    assert re.search(rf"fixed cost per step, .*: {number} ms .*; x \d+ steps = {number} s", out), out
    table = re.findall(rf"^\s+(128|512|2048)\s+{number} \({number}\)\s+{number} \({number}\)$", out, re.MULTILINE)
    assert [row[0] for row in table] == ["128", "512", "2048"], out
