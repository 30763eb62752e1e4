"""The integer golden model: the one definition of what the hardware computes.

numpy, integers only (no float anywhere in the inference path), vectorized over a batch.
`forward` returns the logits and the complete spike record, so that the RTL and the PyTorch
model can be compared with it spike by spike. The operations are those of
docs/integer-semantics.md, built from `quant.contract`.

Record keys (B images, T timesteps, N tokens, D channels, H hidden, C classes):

==================  ============  =====================================================
key                 shape         meaning
==================  ============  =====================================================
``enc.e``           [B, N, D]     E: requantized patch embedding (same for every t)
``u0``              [B, T, N, D]  encoder LIF input I[t] = E + P[t] + g*S[t-1]
``enc``             [B, T, N, D]  encoder spikes S[t] (block 0's input spikes)
``bL.in``           [B, T, N, D]  block L's input spikes (L >= 1)
``bL.q/k/v``        [B, T, N, D]  query / key / value spikes
``bL.kv``           [B, T, D]     the attention LIF's spikes (per channel)
``bL.attn``         [B, T, N, D]  Q AND kv
``bL.u_attn``       [B, T, N, D]  residual stream after the attention branch
``bL.mlp_in``       [B, T, N, D]  the MLP's input spikes
``bL.fc1``          [B, T, N, H]  hidden spikes
``bL.u_mlp``        [B, T, N, D]  residual stream after the MLP branch
``head``            [B, T, N, D]  readout LIF spikes
``logits_t``        [B, T, C]     logits of each timestep (readout ``pool``: counts over
                                  tokens @ W[D, C]; ``token``: S flattened @ W[N*D, C])
``logits``          [B, C]        logits summed over T
``pred``            [B]           argmax, ties to the lowest class
==================  ============  =====================================================
"""

from __future__ import annotations

import numpy as np

from model.config import ModelConfig
from quant.artifact import Artifact
from quant.contract import ACC, argmax_lowest, lif_step, requantize, sdsa_v1, spike_linear

__all__ = ["patchify", "forward", "predict", "spike_layers", "spike_counts", "check_images"]


def check_images(cfg: ModelConfig, images: np.ndarray) -> np.ndarray:
    """Validate a batch of images [B, H, W] or [B, H, W, C] of unsigned pixel_bits integers."""
    x = np.asarray(images)
    h, w, c = cfg.image_shape
    if x.ndim == 3 and c == 1:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (h, w, c):
        want = f"[batch, {h}, {w}] or [batch, {h}, {w}, 1]" if c == 1 else f"[batch, {h}, {w}, {c}]"
        raise ValueError(f"images must have shape {want} for config {cfg.name}; got {tuple(np.shape(images))}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"images must hold integers in [0, {cfg.pixel_max}] (pixel_bits={cfg.pixel_bits}); got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > cfg.pixel_max):
        raise ValueError(
            f"pixel values must be in [0, {cfg.pixel_max}] for pixel_bits={cfg.pixel_bits}; got [{x.min()}, {x.max()}]"
        )
    return x.astype(ACC)


def patchify(cfg: ModelConfig, images: np.ndarray) -> np.ndarray:
    """[B, H, W, C] -> [B, N, K]: tokens in row-major patch order, each patch (py, px, ch) row-major."""
    x = check_images(cfg, images)
    b = x.shape[0]
    p = cfg.patch
    gh, gw = cfg.grid
    x = x.reshape(b, gh, p, gw, p, cfg.image_shape[2]).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, gh * gw, cfg.patch_dim)


def spike_layers(cfg: ModelConfig) -> list[str]:
    """Names of every spiking layer in the record, in network order."""
    names = ["enc"]
    for l in range(cfg.blocks):
        p = f"b{l}."
        if l > 0:
            names.append(p + "in")
        names += [p + s for s in ("q", "k", "v", "kv", "attn", "mlp_in", "fc1")]
    names.append("head")
    return names


def spike_counts(cfg: ModelConfig, record: dict[str, np.ndarray]) -> np.ndarray:
    """[B, len(spike_layers(cfg))] int64: per image, the spikes of every spike layer summed over
    t, tokens and channels (kv: over t and channels), from `forward`'s record (record=True).
    What the hardware counts and the host link's RESULT carries."""
    names = spike_layers(cfg)
    missing = [n for n in names if n not in record]
    if missing:
        raise ValueError(f"spike_counts: the record lacks {missing[0]}; run forward(..., record=True)")
    return np.stack([record[n].reshape(len(record[n]), -1).sum(axis=1, dtype=ACC) for n in names], axis=1)


def forward(artifact: Artifact, images: np.ndarray, record: bool = True) -> dict[str, np.ndarray]:
    """Run the integer network on a batch; returns the record described in the module doc."""
    cfg = artifact.config
    P = {k: v.astype(ACC) for k, v in artifact.params.items()}
    x = patchify(cfg, images)
    B, T, N, D = x.shape[0], cfg.timesteps, cfg.tokens, cfg.dim
    sh = cfg.requant_shift

    e = requantize(np.matmul(x, P["enc.weight"]), P["enc.mult"], sh, P["enc.bias"])
    rec: dict[str, list] = {}

    def put(key, value):
        if record:
            rec.setdefault(key, []).append(value)

    def zeros(width):
        return np.zeros((B, N, width), ACC)

    v_enc = zeros(D)
    s_enc = zeros(D).astype(np.uint8)
    blocks = []
    for l in range(cfg.blocks):
        blocks.append({
            "in": zeros(D), "q": zeros(D), "k": zeros(D), "v": zeros(D), "kv": np.zeros((B, D), ACC),
            "mlp_in": zeros(D), "fc1": zeros(cfg.hidden),
        })
    v_head = zeros(D)
    logits_t = np.zeros((B, T, cfg.classes), ACC)

    for t in range(T):
        u = e + P["enc.pos"][t] + P["enc.gain"] * s_enc  # s_enc is S[t-1] (zero at t = 0)
        s_enc, v_enc = lif_step(v_enc, u, P["enc.theta"])
        put("u0", u)
        put("enc", s_enc)
        for l, m in enumerate(blocks):
            p = f"b{l}."
            if l == 0:
                s = s_enc
            else:
                s, m["in"] = lif_step(m["in"], u, P[p + "in.theta"])
                put(p + "in", s)
            qkv = {}
            for name in ("q", "k", "v"):
                acc = spike_linear(s, P[p + name + ".weight"]) + P[p + name + ".bias"]
                qkv[name], m[name] = lif_step(m[name], acc, P[p + name + ".theta"])
                put(p + name, qkv[name])
            attn, kv, m["kv"] = sdsa_v1(qkv["q"], qkv["k"], qkv["v"], m["kv"], P[p + "kv.theta"])
            put(p + "kv", kv)
            put(p + "attn", attn)
            u = u + requantize(spike_linear(attn, P[p + "o.weight"]), P[p + "o.mult"], sh, P[p + "o.bias"])
            put(p + "u_attn", u)
            s2, m["mlp_in"] = lif_step(m["mlp_in"], u, P[p + "mlp_in.theta"])
            put(p + "mlp_in", s2)
            acc = spike_linear(s2, P[p + "fc1.weight"]) + P[p + "fc1.bias"]
            hid, m["fc1"] = lif_step(m["fc1"], acc, P[p + "fc1.theta"])
            put(p + "fc1", hid)
            u = u + requantize(spike_linear(hid, P[p + "fc2.weight"]), P[p + "fc2.mult"], sh, P[p + "fc2.bias"])
            put(p + "u_mlp", u)
        s_head, v_head = lif_step(v_head, u, P["head.theta"])
        put("head", s_head)
        if cfg.readout == "token":  # every token's own head rows: [B, N*D] @ [N*D, C]
            feats = s_head.reshape(B, N * D).astype(ACC)
        else:
            feats = np.sum(s_head, axis=1, dtype=ACC)  # spikes per channel over tokens, [B, D]
        logits_t[:, t] = np.matmul(feats, P["head.weight"]) + P["head.bias"]

    out = {k: np.stack(v, axis=1) for k, v in rec.items()}
    if record:
        out["enc.e"] = e
    out["logits_t"] = logits_t
    out["logits"] = logits_t.sum(axis=1)
    out["pred"] = argmax_lowest(out["logits"])
    return out


def predict(artifact: Artifact, images: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes [B], logits [B, C]) without keeping the spike record."""
    preds, logits = [], []
    for i in range(0, len(images), batch):
        r = forward(artifact, images[i : i + batch], record=False)
        preds.append(r["pred"])
        logits.append(r["logits"])
    if not preds:
        return np.zeros(0, np.int64), np.zeros((0, artifact.config.classes), ACC)
    return np.concatenate(preds), np.concatenate(logits)
