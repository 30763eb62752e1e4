"""The whole network (hw.top.Top, generated Verilog) against quant.golden.forward, every spike.

Each comparison covers every spike plane of every layer at every timestep and token (and the
per-channel kv spikes), the integer logits and the class, through ``sim.network.check_images``;
a failure names the first mismatch as ``image i: layer/t/token/channel: expected x got y (seed s)``
and the waveform of the failing run.

* the shipped digits artifact on real digits test images (all 360 under ``-m slow`` and in
  ``python -m bench sim``);
* random artifacts over many configs (weight bits 2/4/8, every STF mode, 0-2 blocks, extreme
  thresholds, biases and weights, lane counts that do and do not divide the layer widths, dense
  and event-driven) on random images;
* random stalls on the input and output streams, which must not change any value;
* single-bit faults built in through a test-only parameter, which the scoreboard must catch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.config import HW_PRESETS, HardwareConfig, ModelConfig
from model.data import load_dataset
from quant import golden
from quant.artifact import SHIPPED_ARTIFACT, load_artifact, random_artifact
from sim.network import check_images, rtl_forward, top_design

SHIPPED = SHIPPED_ARTIFACT


def _report(run, mismatches) -> str:
    lines = [str(m) for m in mismatches[:5]]
    if run.failure:
        lines.insert(0, run.failure)
    if run.waves:
        lines.append(f"waveform: {run.waves}")
    return "\n".join(lines)


def _check(artifact, hw, sim, images, seed, tag, **kw):
    design = top_design(artifact, hw, sim)
    run = rtl_forward(design, artifact.config, images, seed=seed, tag=tag, **kw)
    bad = check_images(artifact, images, run, seed=seed)
    assert run.passed and not bad, _report(run, bad)
    return run


def _digits(count: int | None = None):
    x, y = load_dataset("digits", "test")
    return (x, y) if count is None else (x[:count], y[:count])


# -- the shipped artifact on real images -----------------------------------------------------

@pytest.mark.parametrize("hw", ["default", "small"])
def test_shipped_digits_artifact_on_real_images(sim, seed, hw):
    art = load_artifact(SHIPPED)
    x, _ = _digits(12 if hw == "default" else 6)
    run = _check(art, hw, sim, x, seed, f"digits-{hw}")
    # the cycle count is the design's own; it must be plausible, not only present
    assert (run.cycles > 0).all() and run.cycles.max() < 200_000, run.cycles


@pytest.mark.slow
def test_full_digits_test_split_is_bit_exact(sim, seed):
    art = load_artifact(SHIPPED)
    x, _ = _digits()
    run = _check(art, "default", sim, x, seed, "digits-all")
    assert len(run.cls) == len(x) == 360


# -- random artifacts over configs -------------------------------------------------------------

def _cfg(**kw) -> ModelConfig:
    base = dict(name="rnd", image_shape=(4, 4, 1), pixel_bits=4, patch=2, timesteps=3, dim=8, blocks=1,
                mlp_ratio=2, classes=4, weight_bits=4, bias_bits=8, threshold_bits=8, pos_bits=6,
                feedback_bits=6, mult_bits=8, requant_shift=6, stf="both")
    base.update(kw)
    return ModelConfig(**base)


def _hw(**kw) -> HardwareConfig:
    return HardwareConfig(**{"lanes": 4, "token_lanes": 2, **kw})


# (id, config, hardware config, artifact extreme): 26 cases
RANDOM_CASES = [
    ("w2-off", _cfg(weight_bits=2, stf="off"), _hw(), None),
    ("w4-tspe", _cfg(stf="tspe"), _hw(), None),
    ("w4-tf", _cfg(stf="tf"), _hw(), None),
    ("w8-both", _cfg(weight_bits=8, bias_bits=12, threshold_bits=12, mult_bits=10), _hw(), None),
    ("w8-off-dense", _cfg(weight_bits=8, stf="off"), _hw(event_driven=False), None),
    ("w2-both-T1", _cfg(weight_bits=2, timesteps=1), _hw(), None),
    ("w4-both-T5", _cfg(timesteps=5), _hw(lanes=3, token_lanes=3), None),
    ("blocks2-T2-dense", _cfg(blocks=2, timesteps=2), _hw(event_driven=False), None),
    ("blocks2", _cfg(blocks=2, stf="tf"), _hw(lanes=8, token_lanes=4), None),
    ("lanes-odd", _cfg(dim=6, mlp_ratio=3, classes=3), _hw(lanes=4, token_lanes=3), None),
    ("lanes1", _cfg(dim=4, classes=2), _hw(lanes=1, token_lanes=1), None),
    ("lanes-wide", _cfg(), _hw(lanes=16, token_lanes=8), None),
    ("patch1", _cfg(image_shape=(3, 3, 1), patch=1, dim=5), _hw(), None),
    ("patch3-6x6", _cfg(image_shape=(6, 6, 1), patch=3, classes=5), _hw(), None),
    ("pixel1", _cfg(pixel_bits=1, stf="tspe"), _hw(), None),
    ("pixel8", _cfg(pixel_bits=8, requant_shift=9), _hw(event_driven=False), None),
    ("tree-regs0", _cfg(), _hw(tree_register_every=0), None),
    ("tree-regs1", _cfg(weight_bits=8), _hw(tree_register_every=1), None),
    ("max-both", _cfg(), _hw(), "max"),
    ("min-both", _cfg(), _hw(), "min"),
    ("max-w8", _cfg(weight_bits=8, stf="tf", blocks=2), _hw(), "max"),
    ("min-w2", _cfg(weight_bits=2, stf="tspe"), _hw(event_driven=False), "min"),
    # the per-token readout: one token per head group, token n's own head rows
    ("token", _cfg(readout="token"), _hw(), None),
    ("token-blocks2-dense", _cfg(blocks=2, classes=5, readout="token"), _hw(lanes=3, token_lanes=3, event_driven=False), None),
    ("token-lanes1", _cfg(dim=4, classes=2, readout="token"), _hw(lanes=1, token_lanes=1), None),
    ("token-max", _cfg(readout="token", stf="tf"), _hw(lanes=8, token_lanes=4), "max"),
]


@pytest.mark.parametrize("cfg,hw,extreme", [c[1:] for c in RANDOM_CASES], ids=[c[0] for c in RANDOM_CASES])
def test_random_artifact_on_random_images(sim, seed, cfg, hw, extreme):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 1 << cfg.pixel_bits, (3, *cfg.image_shape[:2]))
    images[0] = 0                                 # all-zero image
    images[1] = (1 << cfg.pixel_bits) - 1         # all-max image
    # A typical artifact must exercise the datapath: for a few configs some seeds give one whose
    # encoder never fires on these images, so take the first of seed, seed + 1, ... that fires.
    for s in range(seed, seed + 50):
        art = random_artifact(cfg, s, extreme=extreme)
        if extreme is not None or golden.forward(art, images)["enc"].any():
            break
    else:
        pytest.fail(f"no random artifact of seeds {seed}..{seed + 49} fires: the comparison would be vacuous")
    _check(art, hw, sim, images, seed, "random")


# -- backpressure ------------------------------------------------------------------------------

def test_random_stalls_do_not_change_results(sim, seed):
    art = load_artifact(SHIPPED)
    x, _ = _digits(4)
    calm = _check(art, "small", sim, x, seed, "calm")
    stalled = _check(art, "small", sim, x, seed, "stalled", in_stall=0.4, out_stall=0.5)
    np.testing.assert_array_equal(stalled.logits, calm.logits)
    # the design's own cycle count runs from the first pixel to the result: stalls on the pixel
    # stream lengthen it, never shorten it
    assert (stalled.cycles >= calm.cycles).all(), (calm.cycles, stalled.cycles)


# -- run-time parameter loading ----------------------------------------------------------------

def test_loadable_top_runs_each_loaded_parameter_image(sim, seed):
    """A loadable Top (power-on: random_artifact(cfg, 0)) takes artifact A's parameter image over
    ``wload``, runs 2 images, then B's, 2 more: every spike, logit and spike count equals the
    loaded artifact's golden model (A and B differ from each other in every memory)."""
    from hw.param_image import ParamImage
    from tests.test_param_image import firing_artifact_differing_everywhere

    cfg = _cfg()
    hw = _hw(weights="loadable")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 1 << cfg.pixel_bits, (4, *cfg.image_shape[:2]))
    init = random_artifact(cfg, 0)
    a = firing_artifact_differing_everywhere(cfg, init, images, hw.lanes, seed % 1000)
    b = firing_artifact_differing_everywhere(cfg, a, images, hw.lanes, seed % 1000 + 500)
    image = ParamImage(cfg, hw.lanes)
    design = top_design(init, hw, sim, name="top_loadable")
    run = rtl_forward(design, cfg, images, seed=seed, tag="loadable", param_images=[image.pack(a), image.pack(b)],
                      images_per_set=[2, 2])
    bad = check_images(a, images[:2], run_slice(run, 0, 2), seed=seed) + \
        check_images(b, images[2:], run_slice(run, 2, 4), seed=seed, first_image=2)
    assert run.passed and not bad, _report(run, bad)


def run_slice(run, lo, hi):
    from dataclasses import replace

    return replace(run, cls=run.cls[lo:hi], logits=run.logits[lo:hi], cycles=run.cycles[lo:hi],
                   spikes=run.spikes[lo:hi], records=run.records[lo:hi])


# -- teeth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["leak_round", "tree_input"])
def test_single_bit_fault_is_reported(sim, seed, fault):
    art = load_artifact(SHIPPED)
    x, _ = _digits(4)
    design = top_design(art, "small", sim, fault=fault)
    run = rtl_forward(design, art.config, x, seed=seed, tag=f"fault-{fault}")
    bad = check_images(art, x, run, seed=seed)
    assert bad, f"the {fault} fault matched the golden model on every spike: the scoreboard has no teeth"
    # the report has the documented form
    assert "expected" in str(bad[0]) and "got" in str(bad[0]) and f"seed {seed}" in str(bad[0])


def test_blocks0_is_refused_with_a_reason():
    # the golden model allows L = 0 (the head reads the encoder input); the hardware does not build it
    from hw.top import Top

    with pytest.raises(ValueError, match="blocks >= 1"):
        Top(random_artifact(_cfg(blocks=0), 0), _hw())


def test_hw_presets_are_the_ones_tested():
    # the benches above name presets; a renamed preset must fail here, not skip silently
    assert {"default", "small"} <= set(HW_PRESETS)
