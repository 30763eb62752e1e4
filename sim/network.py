"""The whole network in RTL simulation, spike by spike against the golden model.

``rtl_forward(design, cfg, images)`` streams images into ``hw.top.Top`` (built with
``trace=True``) through the generic stream bench, collects one result per image and every trace
record, and splits the records by image (all of image b's records arrive before b's result is
taken, and image b+1's pixels are only accepted after that). ``check_images`` compares every
spike of every layer at every timestep, the integer logits and the class with
``quant.golden.forward`` and returns the first mismatch of each image; then the spike counts per
layer that Top's result carries, against ``quant.golden.spike_counts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from model.config import HW_PRESETS, HardwareConfig, ModelConfig
from quant import golden
from quant.artifact import Artifact
from sim import runner
from sim.scoreboard import Mismatch, first_mismatch
from sim.streams import run_streams

__all__ = ["top_design", "records_per_image", "rtl_forward", "check_images", "NetRun", "linear_weight_names",
           "weight_variant"]


def _hw(hw_cfg: HardwareConfig | str | None) -> HardwareConfig:
    if hw_cfg is None:
        return HW_PRESETS["default"]
    return HW_PRESETS[hw_cfg] if isinstance(hw_cfg, str) else hw_cfg


def top_design(artifact: Artifact, hw_cfg: HardwareConfig | str | None, sim: str, *, fault: str | None = None,
               name: str | None = None) -> runner.Design:
    """Top(artifact, hw_cfg, trace=True, fault=...) built for `sim`, cached by what it depends on.

    With ``weights="loadable"`` the artifact is only the power-on contents of the parameter
    memories (``rtl_forward(..., param_images=...)`` replaces them); the key names it all the same.
    """
    from hw.top import Top

    from hw.cycles import image_cycles
    from hw.sequencer import Program

    hw = _hw(hw_cfg)
    nm = name or f"top_{artifact.config.name}"
    design = runner.build(lambda: Top(artifact, hw, trace=True, fault=fault), name=nm, sim=sim,
                          key=(artifact.config.hash, artifact.checksum, hw.hash, fault))
    # The cycle model's dense count (every input visited) bounds an image's cycles: rtl_forward's
    # hang timeout scales with it (fmnist-small on `small` takes about 200k cycles an image).
    design.meta["dense_cycles"] = image_cycles(Program(artifact, hw))["total"]
    return design


def records_per_image(cfg: ModelConfig) -> int:
    """Trace records of one image: T*N rows for every layer, T rows for each per-channel kv."""
    names = golden.spike_layers(cfg)
    return sum(cfg.timesteps * (1 if n.endswith(".kv") else cfg.tokens) for n in names)


def linear_weight_names(cfg: ModelConfig) -> list[str]:
    """The SpikeLinear weight matrices (a loadable design takes every parameter at run time:
    hw.param_image; these are the ones `weight_variant` redraws)."""
    names = []
    for l in range(cfg.blocks):
        names += [f"b{l}.{x}.weight" for x in ("q", "k", "v", "o", "fc1", "fc2")]
    return names + ["head.weight"]


def weight_variant(base: Artifact, seed: int, extreme: str | None = None) -> Artifact:
    """`base` with new random (or extreme) SpikeLinear weights and every other parameter kept."""
    from quant.artifact import param_spec

    rng = np.random.default_rng(seed)
    spec = param_spec(base.config)
    params = dict(base.params)
    for n in linear_weight_names(base.config):
        shape, lo, hi = spec[n]
        if extreme == "max":
            params[n] = np.full(shape, hi)
        elif extreme == "min":
            params[n] = np.full(shape, lo)
        else:
            params[n] = rng.integers(lo, hi + 1, shape)
    return Artifact(base.config, params, {"source": f"weight_variant(seed={seed}, extreme={extreme}) of "
                                                    f"{base.info.get('source', 'an artifact')}"})


@dataclass
class NetRun:
    """One simulation: per image the result fields and the decoded spike record."""

    cls: np.ndarray
    logits: np.ndarray
    cycles: np.ndarray
    spikes: np.ndarray  # [B, layers]: Top's spike counts per layer
    records: list[dict[str, np.ndarray]]
    sim_seconds: float
    sim_cycles: int
    passed: bool
    failure: str = ""
    waves: Any = None
    extra: dict = field(default_factory=dict)


def rtl_forward(design: runner.Design, cfg: ModelConfig, images: np.ndarray, *, seed: int, tag: str,
                in_stall: float = 0.0, out_stall: float = 0.0, param_images: Sequence[bytes] | None = None,
                images_per_set: Sequence[int] | None = None, waves: bool = False) -> NetRun:
    """Simulate `images` ([B, H, W(, C)] integers) on a Top design built with trace=True.

    ``param_images``: for a loadable design, parameter images (``hw.param_image.ParamImage(cfg,
    lanes).pack(artifact)``) streamed into ``wload`` before the images they serve: image i before
    the next ``images_per_set[i]`` images.
    """
    from hw.trace import decode_trace

    imgs = golden.check_images(cfg, images)
    B = len(imgs)
    flat = imgs.reshape(B, -1)
    per = records_per_image(cfg)
    inputs: dict[str, list[Any]] = {"pixels": [int(p) for p in flat.reshape(-1)]}
    schedule = None
    if param_images is not None:
        if images_per_set is None or len(images_per_set) != len(param_images) or sum(images_per_set) != B:
            raise ValueError("images_per_set must give, for every parameter image, how many of the images follow it")
        inputs["wload"] = []
        schedule = []
        img0 = 0
        npix = flat.shape[1]
        for data, n in zip(param_images, images_per_set):
            start = len(inputs["wload"])
            inputs["wload"] += [{"addr": a, "data": int(d)} for a, d in enumerate(data)]
            schedule.append(("wload", start, len(inputs["wload"])))
            schedule.append(("pixels", img0 * npix, (img0 + n) * npix))
            img0 += n
    # Timeout: generous against the schedule (pixels + a bound on compute per image: twice the
    # dense cycle count when top_design recorded it, at least 200k).
    per_image = max(200_000, 2 * int(design.meta.get("dense_cycles", 0)))
    timeout = per_image * B + 20 * len(inputs.get("wload", []))
    r = run_streams(design, inputs, {"result": B, "trace": B * per}, seed=seed, tag=tag, in_stall=in_stall,
                    out_stall=out_stall, timeout_cycles=int(timeout / max(0.05, 1 - max(in_stall, out_stall))),
                    waves=waves, schedule=schedule)
    res = r.outputs.get("result", [])
    C = cfg.classes
    cls = np.array([x["cls"] for x in res], np.int64)
    logits = np.array([[x[f"logits.{c}"] for c in range(C)] for x in res], np.int64).reshape(len(res), C)
    cycles = np.array([x["cycles"] for x in res], np.int64)
    K = len(golden.spike_layers(cfg))
    spikes = np.array([[x[f"spikes.{k}"] for k in range(K)] for x in res], np.int64).reshape(len(res), K)
    # Split the trace by image: records up to result b's handshake belong to image b.
    rc = list(r.cycles_of.get("result", []))
    tr, tc = r.outputs.get("trace", []), list(r.cycles_of.get("trace", []))
    records, j = [], 0
    failure = "" if r.passed else r.failure_text()
    for b in range(len(res)):
        mine = []
        while j < len(tr) and tc[j] <= rc[b]:
            mine.append(tr[j])
            j += 1
        try:
            records.append({k: v[0] for k, v in decode_trace(cfg, mine).items()})
        except ValueError as e:
            failure = failure or f"image {b}: the trace cannot be decoded: {e} (seed {seed})"
            records.append({})
    if j < len(tr):
        failure = failure or f"{len(tr) - j} trace records after the last result (seed {seed})"
    return NetRun(cls, logits, cycles, spikes, records, r.result.seconds, r.cycles, r.passed and not failure, failure,
                  r.result.waves)


def check_images(artifact: Artifact, images: np.ndarray, run: NetRun, *, seed: int | None = None,
                 first_image: int = 0) -> list[Mismatch]:
    """The first mismatch of every image that has one (empty: bit-exact on every spike)."""
    cfg = artifact.config
    rec = golden.forward(artifact, images)
    counts = golden.spike_counts(cfg, rec)
    layers = golden.spike_layers(cfg)
    out = []
    B = len(images)
    if len(run.cls) != B:
        return [Mismatch("result", None, None, None, f"{B} results", f"{len(run.cls)} results", seed)]
    for b in range(B):
        g = {k: v[b] for k, v in rec.items()}
        h = dict(run.records[b])
        h["logits"] = run.logits[b]
        h["pred"] = run.cls[b]
        g["spike_counts"], h["spike_counts"] = counts[b], run.spikes[b]
        m = first_mismatch(g, h, layers, extra=("logits", "pred", "spike_counts"), seed=seed, image=first_image + b)
        if m is not None:
            if m.got == -1:  # hw.trace.MISSING: no record filled this entry
                m = Mismatch(m.layer, m.t, m.token, m.channel, m.expected, "missing (no trace record)", m.seed,
                             m.image)
            out.append(m)
    return out
