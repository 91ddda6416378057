#!/usr/bin/env bash
# The VAE of Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", in this repo's code:
# dynamically binarised MNIST, 784-200-200-50 with tanh, Bernoulli decoder, k = 1 training (the plain ELBO), and
# their Adam schedule: stage i = 0 ... 7 trains 3^i epochs at learning rate 1e-3 * 10^(-i/7), 3,280 epochs in all.
# Differences from the paper: batches of 100 (theirs: 20) and Adam's default epsilon 1e-8 (theirs: 1e-4).
#
#   bash experiments/burda2015.sh [STAGES]      # default 8; rerun it to continue where it stopped
#
# Each stage resumes the last one's checkpoint and leaves a copy in runs/burda2015/stage<i>/ for test.py, e.g.
#   python test.py --model vae --ckpt-dir runs/burda2015/stage4 --plot-dir runs/burda2015/stage4 --iw-samples 5000
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=runs/burda2015
network=$("$python" -c 'import config; print(*config.as_flags(config.BURDA2015))')  # the network, from config.py
read -ra network <<< "$network"
flags=(--model vae --dataset mnist "${network[@]}" --batch-size 100 --ckpt-dir "$out/ckpts" --resume)
epochs=0
for ((stage = 0; stage < ${1:-8}; stage++)); do
  epochs=$((epochs + 3 ** stage))
  [ -e "$out/stage$stage/mnist_vae.pt" ] && continue
  rate=$("$python" -c "print(1e-3 * 10 ** (-$stage / 7))")
  "$python" train.py "${flags[@]}" --epochs "$epochs" --learning-rate "$rate"
  mkdir -p "$out/stage$stage" && cp "$out/ckpts/mnist_vae.pt" "$out/stage$stage/"
done
