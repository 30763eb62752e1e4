"""A slow, obviously-correct reimplementation of the whole integer network in plain Python ints.

Written from docs/integer-semantics.md, not from quant/golden.py: no numpy in the arithmetic,
one scalar operation at a time, Python's ``>>`` (floor for negatives, as the contract says).
tests/test_golden.py compares every record entry of quant.golden.forward with it.
"""

from __future__ import annotations


def lif(v: int, x: int, theta: int) -> tuple[int, int]:
    """(spike, new membrane): w = v + x; spike iff w >= theta; reset to 0, else leak w >> 1."""
    w = v + x
    if w >= theta:
        return 1, 0
    return 0, w >> 1


def forward_one(cfg, params: dict, image) -> dict:
    """One image (nested lists [H][W][C] of ints) -> the record of quant.golden for that image."""
    P = {k: v.tolist() for k, v in params.items()}
    T, D, Hd, C = cfg.timesteps, cfg.dim, cfg.hidden, cfg.classes
    p, ch = cfg.patch, cfg.image_shape[2]
    gh, gw = cfg.grid
    sh = cfg.requant_shift

    # Tokens row-major over the patch grid; a patch's pixels row-major over (py, px, channel).
    x = []
    for gy in range(gh):
        for gx in range(gw):
            x.append([image[gy * p + py][gx * p + px][c] for py in range(p) for px in range(p) for c in range(ch)])
    N = len(x)
    K = len(x[0])

    def requant(acc, mult, bias):
        return ((acc * mult) >> sh) + bias

    def linear(spikes, weight, n_out):
        out = []
        for j in range(n_out):
            acc = 0
            for i, s in enumerate(spikes):
                if s:
                    acc += weight[i][j]
            out.append(acc)
        return out

    e = []
    for n in range(N):
        row = []
        for d in range(D):
            acc = 0
            for k in range(K):
                acc += x[n][k] * P["enc.weight"][k][d]
            row.append(requant(acc, P["enc.mult"][d], P["enc.bias"][d]))
        e.append(row)

    def zeros(w):
        return [[0] * w for _ in range(N)]

    rec: dict[str, list] = {"enc.e": e}

    def put(key, value):
        rec.setdefault(key, []).append(value)

    v_enc, s_prev = zeros(D), zeros(D)
    mem = [{"in": zeros(D), "q": zeros(D), "k": zeros(D), "v": zeros(D), "kv": [0] * D,
            "mlp_in": zeros(D), "fc1": zeros(Hd)} for _ in range(cfg.blocks)]
    v_head = zeros(D)
    logits_t = []

    def lif_layer(state, inputs, theta):
        spikes = []
        for n in range(N):
            row = []
            for c in range(len(theta)):
                s, state[n][c] = lif(state[n][c], inputs[n][c], theta[c])
                row.append(s)
            spikes.append(row)
        return spikes

    for t in range(T):
        u = [[e[n][d] + P["enc.pos"][t][n][d] + P["enc.gain"][d] * s_prev[n][d] for d in range(D)] for n in range(N)]
        put("u0", u)
        s_enc = lif_layer(v_enc, u, P["enc.theta"])
        put("enc", s_enc)
        s_prev = s_enc
        for l in range(cfg.blocks):
            b = f"b{l}."
            m = mem[l]
            if l == 0:
                s = s_enc
            else:
                s = lif_layer(m["in"], u, P[b + "in.theta"])
                put(b + "in", s)
            qkv = {}
            for name in ("q", "k", "v"):
                pre = [[a + bias for a, bias in zip(linear(s[n], P[b + name + ".weight"], D), P[b + name + ".bias"])]
                       for n in range(N)]
                qkv[name] = lif_layer(m[name], pre, P[b + name + ".theta"])
                put(b + name, qkv[name])
            kv = []
            for c in range(D):
                count = sum(qkv["k"][n][c] & qkv["v"][n][c] for n in range(N))
                spike, m["kv"][c] = lif(m["kv"][c], count, P[b + "kv.theta"][c])
                kv.append(spike)
            put(b + "kv", kv)
            attn = [[qkv["q"][n][c] & kv[c] for c in range(D)] for n in range(N)]
            put(b + "attn", attn)
            u = [[u[n][d] + requant(acc, P[b + "o.mult"][d], P[b + "o.bias"][d])
                  for d, acc in enumerate(linear(attn[n], P[b + "o.weight"], D))] for n in range(N)]
            put(b + "u_attn", u)
            s2 = lif_layer(m["mlp_in"], u, P[b + "mlp_in.theta"])
            put(b + "mlp_in", s2)
            pre = [[a + bias for a, bias in zip(linear(s2[n], P[b + "fc1.weight"], Hd), P[b + "fc1.bias"])]
                   for n in range(N)]
            hid = lif_layer(m["fc1"], pre, P[b + "fc1.theta"])
            put(b + "fc1", hid)
            u = [[u[n][d] + requant(acc, P[b + "fc2.mult"][d], P[b + "fc2.bias"][d])
                  for d, acc in enumerate(linear(hid[n], P[b + "fc2.weight"], D))] for n in range(N)]
            put(b + "u_mlp", u)
        s_head = lif_layer(v_head, u, P["head.theta"])
        put("head", s_head)
        lt = []
        for j in range(C):
            acc = P["head.bias"][j]
            if cfg.readout == "token":  # row n*D + c of the head belongs to token n, channel c
                for n in range(N):
                    for c in range(D):
                        acc += s_head[n][c] * P["head.weight"][n * D + c][j]
            else:
                for c in range(D):
                    acc += sum(s_head[n][c] for n in range(N)) * P["head.weight"][c][j]
            lt.append(acc)
        logits_t.append(lt)
    rec["logits_t"] = logits_t
    logits = [sum(logits_t[t][j] for t in range(T)) for j in range(C)]
    rec["logits"] = logits
    best = 0
    for j in range(1, C):
        if logits[j] > logits[best]:  # strictly greater: a tie keeps the lower index
            best = j
    rec["pred"] = best
    return rec
