"""Cross-check of the cycle model of docs/hardware.md in the Amaranth simulator (no Verilator).

    .venv/bin/python docs/figures/hardware_cycles_pysim.py HW_PRESET IMAGES [SEED]

Streams the first IMAGES digits test images back to back into hw.top.Top (digits-tiny,
random_artifact(cfg, SEED)) and prints (class, cycles) per image; compare with
``docs/figures/hardware_tables.py --images IMAGES --seed SEED``. About 10 s per image (HW small).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np
from amaranth.sim import Simulator
from hw.top import Top
from model.config import PRESETS, HW_PRESETS
from model.data import load_dataset
from quant.artifact import random_artifact

hwname = sys.argv[1]; nimg = int(sys.argv[2]); seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
cfg = PRESETS["digits-tiny"]
art = random_artifact(cfg, seed)
x, _ = load_dataset("digits", "test")
imgs = np.asarray(x[:nimg]).reshape(nimg, -1)
top = Top(art, HW_PRESETS[hwname])
sim = Simulator(top)
sim.add_clock(1e-8)
out = []
async def bench(ctx):
    for img in imgs:
        for p in img:
            ctx.set(top.pixels.valid, 1); ctx.set(top.pixels.payload, int(p))
            await ctx.tick().until(top.pixels.ready)
        ctx.set(top.pixels.valid, 0)
        ctx.set(top.result.ready, 1)
        await ctx.tick().until(top.result.valid)
        out.append((ctx.get(top.result.payload.cls), ctx.get(top.result.payload.cycles)))
        await ctx.tick()
        ctx.set(top.result.ready, 0)
sim.add_testbench(bench)
t0 = time.time(); sim.run(); print(hwname, "seed", seed, out, f"{time.time()-t0:.0f}s", flush=True)
