#!/usr/bin/env bash
# Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1, one stochastic layer, in this
# repo's code: dynamically binarised MNIST, 784-200-200-50 with tanh, Bernoulli decoder, and their Adam schedule:
# stage i = 0 ... 7 trains 3^i epochs at learning rate 1e-3 * 10^(-i/7), 3,280 epochs in all.
# A row of the table is chosen by flags after STAGES: --objective elbo | iwae, --k, --estimator standard | dreg,
# --batch-size (default here 100; the paper's is 20) and --adam-eps (default 1e-8; the paper's 1e-4 was for a loss
# per image, and this repo's loss is per pixel, 784 times smaller: the paper's epsilon is --adam-eps 1.2755e-07),
# and --init and --adam-beta1 (the authors' code: --init glorot-mean --adam-beta1 0.99); --stochastic-layers 2 trains
# their two-layer model (config.BURDA2015_TWO_LAYERS) in runs/burda2015/two-layers-<row>/.
#
#   bash experiments/burda2015.sh [STAGES [FLAGS]]      # default 8 stages, the VAE with k = 1
#   bash experiments/burda2015.sh 5 --objective iwae --k 50 --batch-size 20 --adam-eps 1.2755e-07   # the paper's
#   OMP_NUM_THREADS=1 bash experiments/burda2015.sh ...  # one core each, for two runs side by side
#
# Each row trains in its own folder, $RUNS/<row>/ (RUNS defaults to runs/burda2015); rerun the same command to
# continue where it stopped. Each stage resumes the last one's checkpoint and leaves a copy in <row>/stage<i>/, e.g.
#   python test.py --model vae --ckpt-dir runs/burda2015/elbo-k1-batch100-eps1e-08/stage4 \
#       --plot-dir runs/burda2015/elbo-k1-batch100-eps1e-08/stage4 --iw-samples 5000
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
stages=${1:-8}
shift || true
# The row's flags, checked before any work, and its folder's name; the network comes from config.py.
row=$("$python" - "$@" <<'PY'
import sys
import config
from cli import UserError

sys.argv[0] = "experiments/burda2015.sh"  # the name its error messages go by
keys = ("objective", "k", "estimator", "batch_size", "adam_eps", "init", "adam_beta1", "stochastic_layers")
try:  # --data-root too: where MNIST is, which is not part of the row
    cfg, _ = config.parse(keys + ("data_root",), sys.argv[1:], script_defaults={"batch_size": 100, "model": "vae"})
except UserError as error:
    sys.exit(f"error: {error}")
dreg = "-dreg" if cfg.estimator == "dreg" else ""
init = "" if cfg.init == config.init else f"-{cfg.init}"  # the defaults add nothing: older rows keep their folders
beta1 = "" if cfg.adam_beta1 == config.adam_beta1 else f"-beta1-{cfg.adam_beta1:g}"
two = cfg.stochastic_layers == 2
network = config.BURDA2015_TWO_LAYERS if two else config.BURDA2015
print(f"{'two-layers-' if two else ''}{cfg.objective}-k{cfg.k}{dreg}-batch{cfg.batch_size}-eps{cfg.adam_eps:g}{init}{beta1}",
      *config.as_flags(network), *config.as_flags({key: getattr(cfg, key) for key in keys + ("data_root",)}))
PY
)
read -ra row <<< "$row"
out=${RUNS:-runs/burda2015}/${row[0]}
flags=(--model vae --dataset mnist "${row[@]:1}" --ckpt-dir "$out/ckpts" --resume)
echo "row ${row[0]}: stages 0-$((stages - 1)) in $out"
epochs=0
for ((stage = 0; stage < stages; stage++)); do
  epochs=$((epochs + 3 ** stage))
  [ -e "$out/stage$stage/mnist_vae.pt" ] && continue
  rate=$("$python" -c "print(1e-3 * 10 ** (-$stage / 7))")
  "$python" train.py "${flags[@]}" --epochs "$epochs" --learning-rate "$rate"
  # A stage's copy is whole or absent, and on the disk before its name is (as train.py writes checkpoints).
  mkdir -p "$out/stage$stage" && cp "$out/ckpts/mnist_vae.pt" "$out/stage$stage/mnist_vae.pt.tmp"
  sync "$out/stage$stage/mnist_vae.pt.tmp" && mv "$out/stage$stage/mnist_vae.pt.tmp" "$out/stage$stage/mnist_vae.pt"
  sync "$out/stage$stage"
done
