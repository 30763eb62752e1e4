"""Run `Top` in Amaranth's simulator: images in, results and trace records out (tests, bench).

``simulate_top(top, images)`` feeds each image through the pixel stream (optionally with
stalls), collects one result per image and, when the design has a trace port, every trace
record, tagged with its image index.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

__all__ = ["simulate_top", "stream_put", "stream_get"]


async def stream_put(ctx, stream, payload):
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def simulate_top(top, images, *, stall_every: int = 0, result_delay: int = 0,
                 max_cycles: int = 2_000_000, vcd: str | None = None) -> dict:
    """Simulate `top` on `images` ([B, H, W] or [B, H, W, C] integers).

    Returns {"cls": [B], "logits": [B, C], "cycles": [B] (the design's own count),
    "trace": list of per-image lists of (layer, t, token, spikes)}. ``stall_every`` > 0 drops
    pixel valid for a cycle after every that many pixels; ``result_delay`` holds result.ready
    low that many cycles (the design must hold its output)."""
    cfg = top.cfg
    imgs = np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    flat = imgs.reshape(len(imgs), -1)
    out = {"cls": [], "logits": [], "cycles": [], "trace": [[] for _ in range(len(imgs))]}
    current = {"image": 0}

    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for b, pixels in enumerate(flat):
            current["image"] = b
            for i, p in enumerate(pixels):
                await stream_put(ctx, top.pixels, int(p))
                if stall_every and (i + 1) % stall_every == 0:
                    await ctx.tick()
            if result_delay:
                await ctx.tick().repeat(result_delay)
            res = await stream_get(ctx, top.result)
            out["cls"].append(int(res.cls))
            out["logits"].append([int(v) for v in res.logits])
            out["cycles"].append(int(res.cycles))

    if getattr(top, "trace_enabled", False):
        async def monitor(ctx):
            p = top.trace.payload
            async for _, _, valid, layer, t, token, spikes in ctx.tick().sample(
                    top.trace.valid, p.layer, p.t, p.token, p.spikes):
                if valid:
                    out["trace"][current["image"]].append((int(layer), int(t), int(token), int(spikes)))

        sim.add_process(monitor)
    sim.add_testbench(bench)
    deadline = max_cycles * 1e-8

    def run():
        sim.run_until(deadline) if False else sim.run()

    if vcd:
        with sim.write_vcd(vcd):
            run()
    else:
        run()
    out["cls"] = np.array(out["cls"], np.int64)
    out["logits"] = np.array(out["logits"], np.int64)
    out["cycles"] = np.array(out["cycles"], np.int64)
    return out
