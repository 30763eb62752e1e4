"""hw.dsp: RegisteredMultiplier in fabric and as the MULT18X18D instance's wiring (its model),
the choice between them, and the instance through Yosys's ECP5 flow."""

import json
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Const, Fragment, signed, unsigned

import hw.build as hb
from hw.dsp import (MULT18X18DModel, RegisteredMultiplier, fits_dsp, mult18x18d_map, product_shape)
from hw.requant import Requant
from quant.contract import requantize, signed_range
from tests.hw_util import run_sim, seed_for
from tests.test_hw_requant import run_requant


class StandInECP5:
    """What RegisteredMultiplier reads of a platform: an ECP5 family, and the model asked for."""
    family = "ecp5"
    mult18x18d_model = True


def _extremes(shape):
    if shape.signed:
        lo, hi = -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    else:
        lo, hi = 0, (1 << shape.width) - 1
    return lo, hi


SHAPES = [(unsigned(5), signed(4)), (signed(11), signed(16)), (signed(18), signed(18)), (unsigned(17), signed(18)),
          (signed(2), unsigned(1)), (unsigned(9), unsigned(9))]


@pytest.mark.parametrize("implementation", ["fabric", "model"])
@pytest.mark.parametrize("input_registers", [True, False])
@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
def test_registered_product_is_exact_at_its_latency(a_shape, b_shape, input_registers, implementation):
    rng = np.random.default_rng(seed_for(f"dsp_{a_shape}_{b_shape}_{input_registers}_{implementation}"))
    dut = RegisteredMultiplier(a_shape, b_shape, input_registers=input_registers, implementation=implementation)
    (alo, ahi), (blo, bhi) = _extremes(a_shape), _extremes(b_shape)
    pairs = [(x, y) for x in (alo, ahi, 0) for y in (blo, bhi, 0)]
    pairs += [(int(rng.integers(alo, ahi + 1)), int(rng.integers(blo, bhi + 1))) for _ in range(80)]
    seen = []

    async def bench(ctx):
        for i in range(len(pairs) + dut.latency):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            await ctx.tick()
            seen.append(ctx.get(dut.p))  # after edge i + 1: the product of pair i + 1 - latency

    run_sim(dut, bench)
    want = [x * y for x, y in pairs]
    assert dut.latency == (2 if input_registers else 1)
    assert seen[dut.latency - 1:dut.latency - 1 + len(pairs)] == want
    assert dut.p.shape() == product_shape(a_shape, b_shape)


def test_fits_and_the_choice_of_implementation():
    assert fits_dsp(signed(18), signed(18)) and fits_dsp(unsigned(17), signed(2))
    assert not fits_dsp(unsigned(18), signed(4)) and not fits_dsp(signed(19), signed(4))
    mul = RegisteredMultiplier(signed(11), signed(16))
    assert mul.resolved(None) == "fabric"

    class ECP5:
        family = "ecp5"

    class ICE40:
        family = "ice40"

    assert mul.resolved(ECP5()) == "mult18x18d"
    assert mul.resolved(ICE40()) == "fabric"
    assert mul.resolved(StandInECP5()) == "model"
    assert RegisteredMultiplier(signed(19), signed(4)).resolved(ECP5()) == "fabric"
    assert RegisteredMultiplier(signed(4), signed(4), implementation="fabric").resolved(ECP5()) == "fabric"
    with pytest.raises(ValueError, match=r"signed\(19\) x signed\(4\) does not fit one MULT18X18D"):
        RegisteredMultiplier(signed(19), signed(4), implementation="mult18x18d")
    with pytest.raises(ValueError, match="implementation must be one of"):
        RegisteredMultiplier(signed(4), signed(4), implementation="dsp48")


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_model_refuses_settings_it_does_not_model():
    from amaranth.hdl import Signal
    params, ports = mult18x18d_map(Signal(signed(18)), Signal(signed(18)), Signal(signed(36)),
                                   input_registers=True, clk=Const(0, 1))
    MULT18X18DModel(params, ports)  # the map's own settings are modelled
    with pytest.raises(ValueError, match=r"REG_PIPELINE_CLK='CLK0' is not modelled"):
        MULT18X18DModel({**params, "REG_PIPELINE_CLK": "CLK0"}, ports)
    with pytest.raises(ValueError, match=r"REG_OUTPUT_CE='CE1' is not modelled"):
        MULT18X18DModel({**params, "REG_OUTPUT_CE": "CE1"}, ports)
    with pytest.raises(ValueError, match=r"parameters \['MULT_BYPASS'\] are not modelled"):
        MULT18X18DModel({**params, "MULT_BYPASS": "ENABLED"}, ports)
    with pytest.raises(ValueError, match="only SOURCEB = 0"):
        MULT18X18DModel(params, {**ports, "inputs": {**ports["inputs"], "SOURCEB": Const(1, 1)}})


@pytest.mark.parametrize("P,acc_bits,mult_bits,bias_bits,shift", [(3, 10, 12, 12, 8), (2, 16, 18, 14, 0)])
def test_requant_with_the_instance_wiring_matches_contract(P, acc_bits, mult_bits, bias_bits, shift):
    """The Requant elaborated for an ECP5 platform (its products in MULT18X18D registers, here
    the model on the instance's pins) computes the contract at the same latency."""
    rng = np.random.default_rng(seed_for(f"requant_ecp5_{acc_bits}_{mult_bits}"))
    dut = Requant(P, acc_bits, mult_bits, bias_bits, shift, input_register=True)
    ranges = [signed_range(b) for b in (acc_bits, mult_bits, bias_bits)]
    rows = [tuple(np.full(P, r[0]) for r in ranges), tuple(np.full(P, r[1]) for r in ranges)]
    rows += [tuple(rng.integers(lo, hi + 1, P) for lo, hi in ranges) for _ in range(40)]
    got, first = run_requant(dut, rows, platform=StandInECP5())
    np.testing.assert_array_equal(np.array(got), np.array([requantize(a, mu, shift, b) for a, mu, b in rows]))
    assert first == list(range(3, 3 + len(rows)))
    frag = Fragment.get(Requant(P, acc_bits, mult_bits, bias_bits, shift, input_register=True), StandInECP5())
    assert sum(isinstance(sub, MULT18X18DModel) for sub in _elaboratables(frag)) == P


def _elaboratables(frag):
    for sub, _name, _src in frag.subfragments:
        if getattr(sub, "origins", None):
            yield from (o for o in sub.origins if isinstance(o, MULT18X18DModel))
        yield from _elaboratables(sub)


def test_instance_synthesizes_to_one_registered_mult18x18d(tmp_path):
    """Through Yosys's ECP5 flow (the blackbox's pins checked by `hierarchy -check`): one
    MULT18X18D per product with its A, B and P registers on CLK0, and no fabric multiplier or
    operand flip-flop left."""
    from amaranth.back import rtlil

    from hw.platforms import synth_commands

    class ECP5:
        family = "ecp5"

    dut = RegisteredMultiplier(unsigned(5), signed(4), name="mac")
    (tmp_path / "d.il").write_text(rtlil.convert(dut, name="top", platform=ECP5()))
    script = ["read_verilog -lib +/ecp5/cells_bb.v", "read_rtlil d.il", "hierarchy -check -top top",
              *synth_commands("abc", "top"), "write_json d.json"]
    (tmp_path / "d.ys").write_text("\n".join(script) + "\n")
    r = subprocess.run([hb.find_toolchain("yowasp")["YOSYS"], "-q", "-l", "d.log", "d.ys"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stderr + (tmp_path / "d.log").read_text())[-3000:]
    cells = json.loads((tmp_path / "d.json").read_text())["modules"]["top"]["cells"].values()
    kinds = sorted(c["type"] for c in cells)
    assert kinds.count("MULT18X18D") == 1 and "TRELLIS_FF" not in kinds, kinds
    (dsp,) = [c for c in cells if c["type"] == "MULT18X18D"]
    params = {k: v.strip() if isinstance(v, str) else v for k, v in dsp["parameters"].items()}
    assert {params[k] for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK")} == {"CLK0"}
    assert params["REG_PIPELINE_CLK"] == "NONE"


def test_one_bit_operands_stay_with_yosys_constant_ones_do_not():
    """A 1-bit operand is an AND for Yosys, not a multiplier: no instance. A baked one-row ROM's
    constant keeps the instance (Yosys maps a product with a wide constant onto a MULT18X18D too,
    with its registers bypassed: the encoder Requant's 13.2 ns family in s23b)."""
    from hw.encoder import STFEncoder
    from model.config import ModelConfig
    from quant.artifact import random_artifact

    class ECP5:
        family = "ecp5"

    assert RegisteredMultiplier(unsigned(1), signed(8)).resolved(ECP5()) == "fabric"
    assert RegisteredMultiplier(signed(8), unsigned(1)).resolved(ECP5()) == "fabric"
    assert RegisteredMultiplier(unsigned(2), signed(8)).resolved(ECP5()) == "mult18x18d"
    cfg = ModelConfig(name="t", image_shape=(2, 2, 1), patch=2, timesteps=2, dim=2, pixel_bits=3, blocks=1,
                      heads=1, mlp_ratio=1, classes=2)
    params = random_artifact(cfg, seed=0).params
    for loadable in (False, True):
        enc = STFEncoder(cfg, params, 2, loadable=loadable)  # 2 MAC lanes, a Requant of 2 lanes (one mult row)
        found = []

        def walk(f):
            for sub, _n, _s in f.subfragments:
                found.extend(o.resolved(ECP5()) for o in getattr(sub, "origins", ()) or ()
                             if isinstance(o, RegisteredMultiplier))
                walk(sub)
        walk(Fragment.get(enc, ECP5()))
        assert found == ["mult18x18d"] * 4, (loadable, found)
