"""SpikeDrivenAttention (hw/attention.py) in simulation against quant.contract.sdsa_v1 / lif_step.

Images of T timesteps, each timestep running every block in turn as the Sequencer does:
``count_clear``, the N token rows of K and V in groups of `rows` (the last group zero-padded
where `rows` does not divide N, random idle cycles between groups), ``fire`` exactly
``count_latency`` cycles after the last ``i_valid`` (the documented minimum), then every token's
Q row on ``q`` with ``attn`` read in the same cycle (combinational). ``clear`` between images.
The model keeps one kv membrane per block, carried over t, and steps it with ``sdsa_v1``.

Edge cases: at t = 0 of the first image the counts are crafted to equal the block's threshold in
even channels (w == theta fires) and theta - 1 in odd ones (does not), from a fresh membrane;
then all-one K, V, Q (count N, the widest input of the kv LIF), then all zero (the membranes
only leak), then random densities. Thresholds are baked (one build per config, fixed seed) and
include the largest one ``theta_bits`` allows.

Checked: ``kv`` exactly, ``kv_valid`` exactly ``fire_latency`` (6) cycles after ``fire``, ``kv``
held through the Q reads, ``attn`` exactly; the ``tree_input`` fault must be caught.
"""

import hashlib

import numpy as np
import pytest

from quant.contract import sdsa_v1
from hw.lif import LIF_LATENCY
from hw.adder_tree import tree_latency
from sim import runner
from sim.program import Program

attention = pytest.importorskip("hw.attention", reason="hw/attention.py has not landed yet")

# (dim D, tokens N, blocks, rows, register_every, theta_bits, timesteps)
CONFIGS = [
    (5, 7, 2, 3, 1, 4, 4),    # rows does not divide N; thresholds above N (only the membrane reaches them)
    (8, 8, 1, 4, 0, 3, 3),    # rows divides N; combinational trees; max threshold 7 < N
    (4, 5, 1, 1, 2, 6, 3),    # one row per cycle, as the Sequencer uses it
]


def _cfg_id(c):
    return "d{}n{}b{}r{}k{}t{}".format(*c[:6])


def _theta(cfg):
    D, N, blocks, _, _, tb, _ = cfg
    rng = np.random.default_rng(2000 + sum(cfg))  # baked: fixed seed
    tmax = (1 << tb) - 1
    th = rng.integers(1, min(N, tmax) + 1, (blocks, D))
    th[:, 0] = 1
    th[:, -1] = tmax  # the largest threshold the component accepts
    return th.astype(np.int64)


def _design(sim, cfg, fault=None):
    D, N, blocks, rows, k, tb, _ = cfg
    th = _theta(cfg)
    digest = hashlib.sha256(th.tobytes()).hexdigest()[:12]
    return runner.build(
        lambda: attention.SpikeDrivenAttention(D, N, th, tb, rows=rows, register_every=k, fault=fault),
        name=f"attention_{_cfg_id(cfg)}" + (f"_{fault}" if fault else ""), sim=sim, key=(cfg, digest, fault)), th


def _images(rng, cfg, th, n_images):
    """[image][t][block] -> (q, k, v), each [N, D] uint8."""
    D, N, blocks, _, _, _, T = cfg
    imgs = []
    for i in range(n_images):
        steps = []
        for t in range(T):
            per_block = []
            for b in range(blocks):
                if i == 0 and t == 0:
                    # count[c] = theta (even c) or theta - 1 (odd c), clipped to [0, N]
                    cnt = np.clip(th[b] - (np.arange(D) % 2), 0, N)
                    kk = (np.arange(N)[:, None] < cnt[None, :]).astype(np.uint8)
                    vv = kk.copy()
                    kk[:, :] |= (rng.random((N, D)) < 0.5).astype(np.uint8) * (kk == 0)  # K alone does not count
                    q = (rng.random((N, D)) < 0.5).astype(np.uint8)
                elif i == 0 and t == 1:
                    q = kk = vv = np.ones((N, D), np.uint8)
                elif i == 0 and t == 2:
                    q = kk = vv = np.zeros((N, D), np.uint8)
                else:
                    p = rng.choice([0.2, 0.5, 0.8, 0.95])
                    q, kk, vv = ((rng.random((N, D)) < p).astype(np.uint8) for _ in range(3))
                per_block.append((q, kk, vv))
            steps.append(per_block)
        imgs.append(steps)
    return imgs


def _word(bits):
    return sum(int(b) << j for j, b in enumerate(bits))


def _expected(cfg, th, imgs):
    D, N, blocks = cfg[:3]
    out = []
    for steps in imgs:
        mem = np.zeros((blocks, D), np.int64)
        for per_block in steps:
            for b, (q, k, v) in enumerate(per_block):
                attn, kv, mem[b] = sdsa_v1(q, k, v, mem[b], th[b])
                out.append((kv, attn))
    return out


def _run(sim, seed, waves, cfg, fault=None, n_images=3):
    D, N, blocks, rows, _, _, T = cfg
    design, th = _design(sim, cfg, fault)
    # the docstring's numbers: count_latency = tree latency + 2, fire_latency = LIF_LATENCY + 2 = 6
    count_latency, fire_latency = tree_latency(rows, cfg[4]) + 2, LIF_LATENCY + 2
    rng = np.random.default_rng(seed)
    imgs = _images(rng, cfg, th, n_images)
    prog = Program().init(clear=0, count_clear=0, i_valid=0, fire=0, q=0)
    fires = []
    for i, steps in enumerate(imgs):
        prog.set(clear=1).tick().set(clear=0)
        for t, per_block in enumerate(steps):
            for b, (q, k, v) in enumerate(per_block):
                prog.set(count_clear=1).tick().set(count_clear=0)
                for g in range(0, N, rows):
                    if rng.random() < 0.25:
                        prog.set(i_valid=0).tick(int(rng.integers(1, 3)))
                    kw = {str(r): (_word(k[g + r]) if g + r < N else 0) for r in range(rows)}
                    vw = {str(r): (_word(v[g + r]) if g + r < N else 0) for r in range(rows)}
                    prog.set(i_valid=1, i_k=kw, i_v=vw).tick()
                # fire exactly count_latency cycles after the last i_valid
                prog.set(i_valid=0, i_k={str(r): 0 for r in range(rows)}, i_v={str(r): 0 for r in range(rows)})
                prog.tick(count_latency - 1)
                name = f"i{i}t{t}b{b}"
                prog.mark(name)
                prog.set(fire=1, block=b).tick()
                prog.set(fire=0, block=int(rng.integers(0, blocks)))  # the block is only read with fire
                prog.wait("kv_valid", timeout=20, sample=["kv"], name="kv")
                for n in range(N):
                    prog.set(q=_word(q[n])).sample(["attn", "kv"], name="attn")
                fires.append(name)
    prog.tick(2)
    seen = prog.run(design, seed=seed, tag="random" + (f"-{fault}" if fault else ""), waves=waves)
    return design, th, imgs, fires, seen, fire_latency


def _first_error(cfg, th, imgs, seen):
    D, N = cfg[:2]
    want = _expected(cfg, th, imgs)
    kvs, attns = seen.samples("kv"), seen.samples("attn")
    if len(kvs) != len(want):
        return f"{len(kvs)} kv_valid pulses for {len(want)} fires"
    for i, (kv, attn) in enumerate(want):
        got_kv = [(kvs[i]["kv"] >> c) & 1 for c in range(D)]
        if got_kv != kv.tolist():
            c = next(c for c in range(D) if got_kv[c] != kv[c])
            return f"fire {i}: kv channel {c}: expected {kv[c]} got {got_kv[c]}"
        for n in range(N):
            a = attns[i * N + n]
            if a["kv"] != kvs[i]["kv"]:
                return f"fire {i}: kv changed to {a['kv']:#x} while q was read (token {n})"
            got = [(a["attn"] >> c) & 1 for c in range(D)]
            if got != attn[n].tolist():
                c = next(c for c in range(D) if got[c] != attn[n, c])
                return f"fire {i}: attn token {n} channel {c}: expected {attn[n, c]} got {got[c]}"
    return None


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_attention(sim, seed, waves, cfg):
    design, th, imgs, fires, seen, fire_latency = _run(sim, seed, waves, cfg)
    assert seen.passed, seen.failure_text()
    err = _first_error(cfg, th, imgs, seen)
    assert err is None, f"{design.name}: {err} (seed {seed})"
    lat = {c - seen.mark(name) for c, name in zip(seen.sample_cycles("kv"), fires)}
    assert lat == {fire_latency}, f"kv_valid {sorted(lat)} cycles after fire, documented {fire_latency}"
    # the crafted first step did exercise both sides of the boundary
    N = cfg[1]
    assert (th[0, 0::2] <= N).any() and (th[0, 1::2] <= N).any(), "the boundary step has no channel at theta or theta - 1"


def test_tree_input_fault_is_caught(sim, seed):
    cfg = CONFIGS[0]
    design, th, imgs, _, seen, _ = _run(sim, seed, False, cfg, fault="tree_input", n_images=1)
    assert seen.passed, seen.failure_text()
    assert _first_error(cfg, th, imgs, seen) is not None, \
        "the tree_input fault matched the contract on every fire: the bench has no teeth"
