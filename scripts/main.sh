#!/usr/bin/env bash
# The main job on the bundled default (sklearn digits, the shipped digits-tiny artifact):
# install, score the artifact with the integer golden model, then run the hardware pipeline.
# Extra arguments go to the last step.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-env.sh"
cd "$root"
py=.venv/bin/python
artifact=artifacts/digits-tiny.npz

echo "== 1/2 integer golden model on the digits test split ($artifact)"
$py -m quant.evaluate --artifact "$artifact" --dataset digits --split test

echo "== 2/2 Verilog for the whole network (build/digits-tiny/top.v)"
$py -m hw.verilog --artifact "$artifact" --out build/digits-tiny/top.v --force "$@"
