"""Evaluate trained models: test metrics (printed and saved as JSON) and a gallery of figures per model.

    python test.py                       # both models on MNIST
    python test.py --dataset fashion-mnist --model vae --iw-samples 100
Each model is rebuilt from the config stored in its checkpoint, so no training flags need repeating.
"""
import cli  # first: on import it makes a Ctrl-C or SIGTERM while torch loads one line
import json

import torch

import checkpoints
import config
import data
import plots
import units
from files import atomic_paths, check_writable
from metrics import measure


def trained_as(metrics):
    """The VAE's training objective in a few words, from its metrics: e.g. "IWAE, k = 50, DReG gradient"."""
    estimator = {"dreg": ", DReG gradient", "stl": ", STL gradient"}.get(metrics["estimator"], "")
    layers = ", two stochastic layers" if metrics["stochastic_layers"] == 2 else ""
    return f"{metrics['objective'].upper()}, k = {metrics['k']}{estimator}{layers}"


def latent_size(metrics):
    """The latent size as the literature writes it: "50", or "100+50" for z1 and z2 (active units likewise)."""
    return "+".join(map(str, [metrics["latent_dims"]] + ([metrics["top_latent_dims"]] if "top_latent_dims" in metrics
                                                          else [])))


def removal_text(metrics, by=""):
    """Burda et al.'s removal check in words: the bound's change with the inactive units removed (by="kl_": those
    the KL count calls inactive)."""
    removed, change, error = (metrics[by + key] for key in ("units_removed", "removal_difference_nats",
                                                             "removal_difference_se"))
    if not any(removed):
        return "no unit is inactive: nothing to remove"
    return (f"-log p(x) bound changes by {change:+.3f} ± {error:.3f} nats with the {'+'.join(map(str, removed))} "
            "inactive units removed (± paired over the test images)")


def report(metrics, epochs):
    """The printed form of measure()'s dict: each figure says what it is."""
    m = metrics
    bce = " (on grey levels: not a likelihood)" if m["binarize"] == "none" else ""
    rows = [("test loss (as trained)", f"{m['test_loss']:.4f}"),
            ("reconstruction", f"MSE {m['mse_per_pixel']:.4f} per pixel, BCE {m['bce_nats']:.1f} nats per image{bce}")]
    if m["model"] == "vae":
        bound = "-log p(x) <=" if m["is_likelihood"] else "IW bound on that"
        rows += [("nats below are", m["nats_are"]),
                 ("-ELBO", f"{m['negative_elbo_nats']:.2f} ± {m['negative_elbo_se']:.2f} nats per image = "
                           f"{m['elbo_reconstruction_nats']:.2f} reconstruction + {m['kl_nats']:.2f} KL"),
                 (bound, f"{m['iw_nll_nats']:.2f} ± {m['iw_nll_se']:.2f} nats per image (importance-weighted, "
                         f"k = {m['iw_samples']}, {m['iw_seconds']:.1f} s; ± standard error over the test images)"),
                 ("active units", f"{'+'.join(map(str, m['active_units_per_layer']))} of {latent_size(m)} "
                                  f"(A_u = Cov_x(E_q[z_u]) > {units.THRESHOLD})"),
                 ("active by KL", f"{'+'.join(map(str, m['kl_active_units_per_layer']))} (mean KL(q || prior) > "
                                  f"{units.KL_THRESHOLD} nats"
                                  f"{'; z1 against p(z1|z2)' if m['stochastic_layers'] == 2 else ''})"),
                 ("without the inactive", removal_text(m)),
                 ("without the KL-inactive", removal_text(m, "kl_"))]
    rows += [(f"{m['knn_neighbours']}-NN accuracy", f"{m['knn_accuracy']:.4f} (on latent codes)"),
             ("speed", f"{m['test_images_per_second']:,.0f} test images/s (loss pass)")]
    beta, objective = (f"beta {m['beta']:g}, ", f"trained as {trained_as(m)}, ") if m["model"] == "vae" else ("", "")
    heading = (f"{m['model']} on {m['dataset']} ({m['likelihood']} likelihood, {beta}"
               f"latent {latent_size(m)}, {objective}{cli.count_of(epochs, 'epoch')})")
    return "\n".join([heading] + [f"  {label:<24}{value}" for label, value in rows])


def main():
    keys = ("model", "dataset", "device", "iw_samples", "data_root", "ckpt_dir", "plot_dir")
    cfg, overrides = config.parse(keys, description=__doc__)
    device = cli.resolve_device(cfg.device)
    names = config.models(cfg.model)
    loaded = {name: checkpoints.load(cfg, name, overrides, device, needs=("history",)) for name in names}
    check_writable(cfg.plot_dir, "--plot-dir", needed=len(names) * plots.FIGURE_SET_BYTES)
    datasets = {}  # by --binarize: each model is measured on the data it was trained on
    for name, (model, checkpoint, model_cfg) in loaded.items():
        if model_cfg.binarize not in datasets:
            datasets[model_cfg.binarize] = data.load(cfg.dataset, cfg.data_root, device, model_cfg.binarize)
        dataset = datasets[model_cfg.binarize]
        torch.manual_seed(model_cfg.seed)  # the VAE's loss and bound sample z: seeded, they repeat
        metrics, codes = measure(model, name, dataset, model_cfg)
        print(report(metrics, len(checkpoint["history"])), flush=True)
        objective = f", {trained_as(metrics)}" if name == "vae" else ""
        title = f"{name.upper()} on {model_cfg.dataset} (latent {latent_size(metrics)}{objective})"
        kl_per_layer = metrics.get("kl_per_dimension_per_layer",
                                   [metrics["kl_per_dimension"]] if "kl_per_dimension" in metrics else [])  # AE: none
        outputs = {what: plots.output_path(model_cfg, name, what) for what in (
            "metrics.json", "latent_space.png", "reconstructed_manifold.png", "reconstructions.png",
            "training_curves.png") + (("samples.png",) if name == "vae" else ())
            + (("kl_per_dimension.png", "activity.png") if kl_per_layer and model.latent_dims > 2 else ())}
        with atomic_paths(outputs.values()) as temporaries:  # the model's whole set, or none of it
            write = dict(zip(outputs, temporaries))
            write["metrics.json"].write_text(json.dumps(metrics, indent=2) + "\n")
            what_codes = "test-set latent means" if name == "vae" else "test-set codes"
            plots.plot_latent_space(codes, dataset.test_labels, dataset.classes, f"{title}: {what_codes}",
                                    write["latent_space.png"])
            plots.plot_manifold(model, codes, name == "vae", f"{title}: decoded latent grid",
                                write["reconstructed_manifold.png"])
            plots.plot_reconstructions(model, dataset.test_images, dataset.test_labels, write["reconstructions.png"])
            plots.plot_training_curves(checkpoint["history"], name == "vae", title, write["training_curves.png"])
            if name == "vae":
                plots.plot_samples(model, write["samples.png"])
            if "kl_per_dimension.png" in write:
                plots.plot_kl_per_dimension(kl_per_layer, metrics["active_units_per_layer"], title,
                                            write["kl_per_dimension.png"])
                plots.plot_activity(metrics["activity_per_layer"], units.THRESHOLD, title, write["activity.png"])
        print(f"  wrote {', '.join(str(path) for path in outputs.values())}", flush=True)

if __name__ == "__main__":
    cli.run(main)
