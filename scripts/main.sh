#!/usr/bin/env bash
# The main job on the bundled default (sklearn digits, the shipped digits-tiny artifact):
# install, score the artifact with the integer golden model, check test images through the
# generated RTL spike by spike, then build the ULX3S-85F bitstream with the open toolchain.
# Extra arguments go to the last step (python -m hw.build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-env.sh"
cd "$root"
py=.venv/bin/python
artifact=artifacts/digits-tiny.npz
# The datapath closes timing at about 42-55 MHz today (docs/build.md, "Measured"): build at 40
# (also hw.build's ULX3S default).
clock=40

echo "== 1/3 integer golden model on the digits test split ($artifact)"
$py -m quant.evaluate --artifact "$artifact" --dataset digits --split test

echo "== 2/3 the generated RTL (Verilator) on 24 digits test images, every spike against the golden model"
$py -m bench sim --artifact "$artifact" --images 24 --sims verilator --out-dir build/main

echo "== 3/3 bitstream for the ULX3S 85F (Yosys + nextpnr-ecp5 + ecppack; build/ulx3s-85F/)"
$py -m hw.build --board ulx3s --artifact "$artifact" --clock "$clock" --force "$@"
