"""The explorer page visualize.py writes: its decoder against PyTorch's, and the page itself in a real browser
(headless Chromium from Debian's packages), opened from file:// with nothing fetched."""
import html
import json
import re
import shutil
import subprocess

import pytest
import torch

import checkpoints
import config
import data
import explorer
from checkpoints import build, model_args
from conftest import run_script
from metrics import encode_all

CHROMIUM = shutil.which("chromium")
# Flags for a closed machine: no first-run work, no background connections, a fresh profile (Chromium's own advice
# for headless runs as root needs --no-sandbox).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--hide-scrollbars"]
# Run in the page after it loads: the pointer at plane points, then two clicks; what it shows goes to a <pre>.
HARNESS = """<script>
const problems = [];
addEventListener("error", event => problems.push("error: " + event.message));
addEventListener("securitypolicyviolation", event => problems.push("blocked: " + event.blockedURI));
const consoleError = console.error;
console.error = (...parts) => { problems.push("console: " + parts.join(" ")); consoleError(...parts); };
</script>"""
ACTIONS = """<script>
function pointer(type, [u, v]) {
  const [x, y] = explorer.toClient(u, v);
  const Event = type === "click" ? MouseEvent : PointerEvent;
  document.getElementById("plot").dispatchEvent(new Event(type, {clientX: x, clientY: y, bubbles: true}));
}
function pixels() { return Array.from(document.getElementById("image").getContext("2d").getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0)); }
addEventListener("load", () => {
  const result = {hovered: [], drawn: explorer.state.drawn};
  for (const point of POINTS) { pointer("pointermove", point); result.hovered.push({at: explorer.state.shown, pixels: pixels()}); }
  pointer("click", ENDS[0]);
  pointer("click", ENDS[1]);
  const finish = () => {
    if (explorer.state.playing) return setTimeout(finish, 50);
    result.played = {at: explorer.state.shown, pixels: pixels()};
    result.problems = problems;
    result.resources = performance.getEntriesByType("resource").map(entry => entry.name);
    const out = document.createElement("pre");
    out.id = "result";
    out.textContent = JSON.stringify(result);
    document.body.append(out);
  };
  finish();
});
</script>"""

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: `apt-get install chromium` "
                                                             "(.ci/run installs it) to test the page in a browser")


@pytest.mark.parametrize("layers", [1, 2])
def test_the_decoding_layers_are_decode_logits(layers):
    torch.manual_seed(0)
    values = {**config.defaults(), **(config.BURDA2015 if layers == 1 else config.BURDA2015_TWO_LAYERS),
              "hidden_dims": 16, "latent_dims": 4, "top_latent_dims": 3, "top_hidden_dims": 8}
    model = build("vae", model_args(type("Config", (), values)))
    z = torch.randn(5, model.code_dims)
    assert torch.equal(torch.nn.Sequential(*model.decoding_layers())(z), model.decode_logits(z))


def open_page(page, tmp_path, points, ends):
    """Run the page in headless Chromium with the actions above; what it reported."""
    text = page.read_text().replace("<head>", "<head>" + HARNESS, 1)
    actions = ACTIONS.replace("POINTS", json.dumps(points)).replace("ENDS", json.dumps(ends))
    tested = tmp_path / "tested.html"
    tested.write_text(text.replace("</body>", actions + "</body>", 1))
    # The page's timers run in virtual time: the interpolation plays before the DOM is dumped.
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
                          "--dump-dom", tested.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, f"the page reported nothing; its DOM ends: {dom[-500:]}"
    return json.loads(html.unescape(found[1]))


def decoded(model, plane_point, origin, basis):
    z = origin + basis @ torch.tensor(plane_point, dtype=basis.dtype)[: basis.shape[1]]
    return (model.decode(z[None])[0, 0].flatten() * 255).tolist()


# A two-stochastic-layer VAE with codes of 3 dimensions: drawn in the plane of their principal components.
TWO_LAYERS = ["--stochastic-layers", "2", "--latent-dims", "4", "--top-latent-dims", "3", "--hidden-dims", "16",
              "--top-hidden-dims", "8", "--likelihood", "bernoulli", "--binarize", "dynamic", "--activation", "tanh"]


@needs_chromium
@pytest.mark.parametrize("trained", ["default", "two layers"])
def test_the_page_decodes_as_pytorch_does_in_a_real_browser(workspace, tmp_path, trained):
    ckpts = workspace / "ckpts"
    if trained == "two layers":
        ckpts = tmp_path / "ckpts"
        result = run_script("train.py", "--model", "vae", *TWO_LAYERS, "--epochs", "1", "--batch-size", "64",
                            "--data-root", workspace / "data", "--ckpt-dir", ckpts, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    result = run_script("visualize.py", "--data-root", workspace / "data", "--ckpt-dir", ckpts,
                        "--plot-dir", tmp_path / "plots", "--model", "vae", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = tmp_path / "plots" / "mnist_vae_explorer.html"
    assert re.search(r"mnist_vae_explorer\.html \(\d+\.\d MB", result.stdout)
    assert ("first two principal components" in page.read_text()) == (trained == "two layers")  # the plane, named
    cfg = config.parse(("ckpt_dir",), ["--ckpt-dir", str(ckpts)])[0]
    model, _, stored = checkpoints.load(cfg, "vae", {}, torch.device("cpu"))
    test_images = data.load("mnist", workspace / "data", torch.device("cpu"), stored.binarize).test_images
    codes = encode_all(model, test_images)
    origin, basis, _ = explorer.latent_plane(codes)
    plane = (codes - origin) @ basis
    points = [plane[0].tolist(), plane[-1].tolist(), plane.mean(0).tolist()]
    ends = [plane[1].tolist(), plane[2].tolist()]

    report = open_page(page, tmp_path, points, ends)
    assert report["problems"] == [] and report["resources"] == []  # no error, nothing fetched
    assert report["drawn"] == len(test_images)  # every test code in the scatter
    pixel = float((plane.max(0).values - plane.min(0).values).max()) / 500  # the plot is 560 canvas pixels wide
    with torch.inference_mode():
        # The pointer lands within a canvas pixel of each point; the image is the decoder's where it landed, to
        # within 1/255; the interpolation ends on the second click's image.
        for point, shown in [*zip(points, report["hovered"]), (ends[1], report["played"])]:
            assert shown["at"] == pytest.approx(point, abs=pixel)
            expected = decoded(model, shown["at"], origin, basis)
            assert max(abs(value - want) for value, want in zip(shown["pixels"], expected)) <= 1


def test_a_decoder_too_large_for_a_page_is_refused_before_any_work(scratch, monkeypatch):
    import visualize
    from conftest import run_main

    monkeypatch.setattr(explorer, "MAX_DECODER_WEIGHTS", 1000)
    message = run_main(visualize, "--data-root", scratch / "data", "--ckpt-dir", scratch / "ckpts",
                       "--plot-dir", scratch / "out")
    assert re.fullmatch(r"error: the AE's decoder has [\d,]+ weights, more than the explorer page runs \(1,000\); "
                        r"draw the other model with --model", message)
    assert not (scratch / "out").exists()
