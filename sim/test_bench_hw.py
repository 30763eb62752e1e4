"""`python -m bench hw --smoke`: the small point on the 25F, 2 images, Yosys-only resources.

The cycles in the JSON must be the design's own ``cycles`` field as ``sim.network.rtl_forward``
returns it (run here again), the cycle model must agree, and the Yosys count of MULT18X18D must
be the 3 per lane + 1 every build of this design has used (above hw.resources' lower bound).
"""

import json

import pytest

from bench import hw as bench_hw
from hw.resources import mult18_lower_bound
from hw.sequencer import Program
from model.config import HW_PRESETS
from model.data import load_dataset
from quant.artifact import load_artifact
from sim.network import rtl_forward, top_design


def test_bench_hw_smoke(sim, tmp_path, capsys):
    if sim != "verilator":
        pytest.skip("the hw bench measures cycles with Verilator only")
    rc = bench_hw.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    d = json.loads((tmp_path / "hw-smoke.json").read_text())
    assert (tmp_path / "hw-smoke.png").is_file()
    assert d["benchmark"] == "hw-smoke" and d["images"] == 2 and d["mode"] == "yosys only (smoke)"
    assert d["variants"] == ["25F"] and list(d["points"]) == ["8x4"] and d["default_point"] is None
    small = HW_PRESETS["small"]
    art = load_artifact(bench_hw.SHIPPED_ARTIFACT)
    x, _ = load_dataset("digits", "test")
    run = rtl_forward(top_design(art, small, sim), art.config, x[:2], seed=0, tag="test-bench-hw")
    assert run.passed, run.failure
    p = d["points"]["8x4"]
    assert p["hw_config"] == small.to_dict() and p["bit_exact"] == 2
    assert p["cycles_per_image"] == [int(c) for c in run.cycles]
    assert p["model_agrees"] and p["model_cycles_per_image"] == p["cycles_per_image"]

    (row,) = d["rows"]
    assert (row["variant"], row["device"], row["point"], row["preset"], row["status"], row["how"]) == (
        "25F", "LFE5U-25F", "8x4", "small", "yosys only", "yosys")
    cells, res = row["yosys_cells"], row["resources"]
    assert res["LUT4"] == {"used": cells["LUT4"] + 2 * cells["CCU2C"], "available": 24288}
    assert res["FF"]["used"] == cells["TRELLIS_FF"] and res["EBR"]["used"] == cells["DP16KD"]
    bound = mult18_lower_bound(Program(art, small))
    assert bound == 24 and res["MULT18"] == {"used": 3 * 8 + 1, "available": 28}
    assert row["fmax_mhz"] is None and row["us_per_image"] is None and row["cycles_mean"] == p["cycles_mean"]
    assert "| 25F" in out and "yosys only" in out
