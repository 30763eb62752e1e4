"""Rebuild the golden model's spike record from the hardware's trace records, and compare.

A trace record (``Top(..., trace=True).trace``, payload `hw.sequencer.trace_layout`) is one LIF
row: ``layer`` (index into ``quant.golden.spike_layers(cfg)``), ``t``, ``token`` (0 for the
per-channel ``bL.kv`` layer) and ``spikes`` (bit c = channel c; bits above the layer's width
are 0). Every row of every layer at every timestep is emitted exactly once per image.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from model.config import ModelConfig
from quant.golden import spike_layers

__all__ = ["MISSING", "decode_trace", "first_mismatch", "layer_shape"]

MISSING = -1  # an entry no record filled


def layer_shape(cfg: ModelConfig, name: str) -> tuple[int, ...]:
    """Shape of one image's record of layer `name`: [T, N, width], or [T, D] for ``bL.kv``."""
    if name.endswith(".kv"):
        return (cfg.timesteps, cfg.dim)
    width = cfg.hidden if name.endswith(".fc1") else cfg.dim
    return (cfg.timesteps, cfg.tokens, width)


def _fields(rec):
    if isinstance(rec, Mapping):
        return int(rec["layer"]), int(rec["t"]), int(rec["token"]), int(rec["spikes"])
    layer, t, token, spikes = rec
    return int(layer), int(t), int(token), int(spikes)


def decode_trace(cfg: ModelConfig, records: Iterable) -> dict[str, np.ndarray]:
    """{layer name: int16 array [1, *layer_shape]} (a batch of one, like quant.golden.forward's
    record); entries no record filled hold MISSING. Records are dicts with keys layer, t, token,
    spikes, or (layer, t, token, spikes) tuples. A record out of range or repeated raises
    ValueError naming it."""
    names = spike_layers(cfg)
    out = {n: np.full((1,) + layer_shape(cfg, n), MISSING, np.int16) for n in names}
    for i, rec in enumerate(records):
        layer, t, token, spikes = _fields(rec)
        if not 0 <= layer < len(names):
            raise ValueError(f"trace record {i}: layer {layer} out of range (the config has {len(names)} spiking layers)")
        name = names[layer]
        shape = layer_shape(cfg, name)
        if not 0 <= t < cfg.timesteps:
            raise ValueError(f"trace record {i}: t {t} out of range [0, {cfg.timesteps})")
        width = shape[-1]
        if spikes >> width:
            raise ValueError(f"trace record {i} ({name}/{t}/{token}): spike bits above channel {width - 1} are set")
        bits = np.array([(spikes >> c) & 1 for c in range(width)], np.int16)
        if name.endswith(".kv"):
            if token != 0:
                raise ValueError(f"trace record {i}: {name} is per channel, token must be 0, got {token}")
            dst = out[name][0, t]
        else:
            if not 0 <= token < cfg.tokens:
                raise ValueError(f"trace record {i}: token {token} out of range [0, {cfg.tokens})")
            dst = out[name][0, t, token]
        if np.any(dst != MISSING):
            raise ValueError(f"trace record {i}: {name}/{t}/{token} was already recorded (duplicate record)")
        dst[:] = bits
    return out


def first_mismatch(golden_record: Mapping[str, np.ndarray], hw_record: Mapping[str, np.ndarray],
                   image: int = 0) -> str | None:
    """The first difference, layers in network order, then t, token, channel ascending, as
    ``layer/t/token/channel: expected x got y`` (token ``-`` for ``bL.kv``; ``got missing`` where
    no record came). Compares image `image` of a batched golden record with image 0 of
    `hw_record` (`decode_trace`'s output); None when every spike is equal."""
    layers = [k for k in golden_record if k in hw_record]
    # network order: the order spike_layers gives, which decode_trace's dict preserves
    order = [k for k in hw_record if k in golden_record]
    for name in order:
        g = np.asarray(golden_record[name])[image]
        h = np.asarray(hw_record[name])[0]
        if g.shape != h.shape:
            return f"{name}: shape {h.shape} differs from the golden {g.shape}"
        diff = np.argwhere(g.astype(np.int64) != h.astype(np.int64))
        if len(diff):
            idx = tuple(diff[0])
            got = "missing" if h[idx] == MISSING else int(h[idx])
            if len(idx) == 2:
                return f"{name}/{idx[0]}/-/{idx[1]}: expected {int(g[idx])} got {got}"
            return f"{name}/{idx[0]}/{idx[1]}/{idx[2]}: expected {int(g[idx])} got {got}"
    del layers
    return None
