"""`python -m bench latency --smoke`: HW preset "small", 2 images, dense and event-driven.

The cycles per image in the JSON must be the design's own ``cycles`` field as
``sim.network.rtl_forward`` returns it (run here again, independently of the bench), the per-pass
trace spans must add up to them, and the docs/hardware.md cycle model must agree where present.
"""

import json

import numpy as np
import pytest

from bench import latency as bench_latency
from model.config import HW_PRESETS
from model.data import load_dataset
from quant.artifact import load_artifact
from sim.network import rtl_forward, top_design


def test_bench_latency_smoke(sim, tmp_path, capsys):
    if sim != "verilator":
        pytest.skip("the latency bench runs Verilator only")
    rc = bench_latency.main(["--smoke", "--out-dir", str(tmp_path), "--board-report", str(tmp_path / "none.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((tmp_path / "latency-smoke.json").read_text())
    assert (tmp_path / "latency-smoke.png").is_file()
    assert data["benchmark"] == "latency-smoke" and data["images"] == 2
    assert data["fmax_mhz"] == HW_PRESETS["small"].clock_mhz and "clock_mhz" in data["fmax_source"]

    art = load_artifact(bench_latency.SHIPPED)
    x, _ = load_dataset("digits", "test")
    for label, hw in (("event_driven", HW_PRESETS["small"]),
                      ("dense", HW_PRESETS["small"].replace(event_driven=False))):
        v = data["variants"][label]
        assert v["hw_config"] == hw.to_dict()
        run = rtl_forward(top_design(art, hw, sim), art.config, x[:2], seed=0, tag=f"test-latency-{label}")
        assert run.passed, run.failure
        assert v["cycles_per_image"] == [int(c) for c in run.cycles]
        trace_sum = sum(v["trace_spans_mean"].values())
        assert trace_sum == pytest.approx(float(np.mean(run.cycles)))
        assert v["us_per_image"] == pytest.approx(np.mean(run.cycles) / data["fmax_mhz"])
        if data["cycle_model"] is not None:
            assert v["model_agrees"] and v["model_cycles_per_image"] == v["cycles_per_image"]
    dense, event = data["variants"]["dense"]["cycles_per_image"], data["variants"]["event_driven"]["cycles_per_image"]
    assert len(set(dense)) == 1 and all(e < d for e, d in zip(event, dense))  # dense does not depend on the image
    assert data["speedup"] == pytest.approx(np.mean(dense) / np.mean(event))
    assert "| dense" in out and "| event_driven" in out


def test_bench_latency_fmax_sources(tmp_path):
    rep = tmp_path / "report.json"
    assert bench_latency.fmax_source(rep, None, 100.0)[0] == 100.0
    assert bench_latency.fmax_source(rep, 62.5, 100.0) == (62.5, "--fmax (no board build report)")
    rep.write_text(json.dumps({"core_clock": "clk", "fmax_mhz": {"clk": {"achieved": 71.3, "constrained": 50.0,
                                                                        "pass": True}}, "clock": {"pll_mhz": 50.0}}))
    f, src = bench_latency.fmax_source(rep, 62.5, 100.0)
    assert f == 71.3 and "board build" in src and "50.0" in src
