"""bench hw without tools: points, the MULT18 pre-check, build rows from hw.build reports (fit,
overflow, failure), the build cache and its key, the time budget, Yosys stat parsing, and the
hw entries of bench all and SUMMARY.md. The real build path runs in the sweep itself; the smoke
run (Verilator + Yosys) is sim/test_bench_hw.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench import hw as bench_hw
from hw.build import BuildError
from model.config import HW_PRESETS
from quant.artifact import random_artifact
from model.config import PRESETS

ART = random_artifact(PRESETS["digits-tiny"], 0)


def report(variant: str, *, ok: bool, error: str | None = None, fmax: float | None = 45.5, lut: int = 1000) -> dict:
    avail = {"25F": (24288, 24288, 56, 28), "85F": (83640, 83640, 208, 156)}[variant]
    used = (lut, 900, 10, 25)
    return {"ok": ok, "error": error, "core_clock": "clk" if fmax else None, "timing_met": (fmax or 0) >= 40 if fmax else None,
            "fmax_mhz": {"clk": {"achieved": fmax, "constrained": 40.0, "pass": True}} if fmax else {},
            "critical_path": {"clk": {"from": "a", "to": "b", "ns": 21.9}} if fmax else {},
            "clock": {"requested_mhz": 40.0, "pll_mhz": 40.0},
            "resources": {k: {"cell": k, "used": u, "available": a}
                          for k, u, a in zip(bench_hw.RESOURCES, used, avail)},
            "seconds": {"total": 12.5}, "tools": {"yosys": "Yosys 0.70"}}


class FakeBuild:
    """Stands in for hw.build.build: writes report.json where hw.build would, returns or raises."""

    def __init__(self, result: str = "ok"):
        self.calls = []
        self.result = result

    def __call__(self, *, board_name, variant, artifact_path, hw_cfg, clock_mhz, out, force, seed, toolchain,
                 allow_timing_fail, progress, placer):
        assert placer == "static", placer
        self.calls.append((variant, hw_cfg.lanes, hw_cfg.token_lanes, clock_mhz, force, allow_timing_fail))
        if self.result == "ok":
            rep, name = report(variant, ok=True), f"{board_name}-{variant}"
        elif self.result == "overflow":
            rep = report(variant, ok=False, fmax=None,
                         error=f"needs 193 MULT18X18D of 156 on the {variant}: a larger --variant")
            name = f"{board_name}-{variant}.failed"
        else:
            rep = report(variant, ok=False, fmax=None, error="yosys failed (exit status 1, see top.rpt): ERROR: x")
            name = f"{board_name}-{variant}.failed"
        d = Path(out) / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.json").write_text(json.dumps(rep))
        rep["dir"] = str(d)
        if not rep["ok"]:
            raise BuildError(rep["error"] + " (logs in x)", rep)
        return rep


def area(tmp_path, lanes, tl, variant, fake, *, digest="d1", force=False, deadline=None):
    hw = bench_hw.point_hw(lanes, tl)
    return bench_hw.area_row(ART, "a.npz", hw, "ulx3s", variant, 40.0, tmp_path, digest, force=force,
                             deadline=deadline, build_fn=fake, seed=None, toolchain="auto", log=lambda m: None)


def test_points_and_presets():
    assert bench_hw.parse_points("8x4, 16X8,32x16") == [(8, 4), (16, 8), (32, 16)]
    for bad, msg in (("8x", "not LANESxTOKEN_LANES"), ("", "no points"), ("8x4,8x4", "given twice")):
        with pytest.raises(ValueError, match=msg):
            bench_hw.parse_points(bad)
    assert bench_hw.preset_of(bench_hw.point_hw(32, 16)) == "default"
    assert bench_hw.preset_of(bench_hw.point_hw(8, 4)) == "small"
    assert bench_hw.preset_of(bench_hw.point_hw(16, 8)) is None
    assert bench_hw.preset_of(HW_PRESETS["small"].replace(clock_mhz=40.0)) == "small"


def test_precheck_refuses_without_building(tmp_path):
    fake = FakeBuild()
    row = area(tmp_path, 16, 8, "25F", fake)
    assert fake.calls == []
    assert (row["status"], row["fits"], row["how"], row["resources"]) == ("does not fit", False, "pre-check", None)
    assert row["note"] == ("not built: needs at least 48 MULT18X18D (hw.resources.mult18_lower_bound), "
                           "the 25F has 28")


def test_built_then_cached_then_forced_or_stale(tmp_path):
    fake = FakeBuild()
    row = area(tmp_path, 8, 4, "25F", fake)
    assert fake.calls == [("25F", 8, 4, 40.0, True, True)]
    assert (row["status"], row["fits"], row["fmax_mhz"], row["timing_met"]) == ("built", True, 45.5, True)
    assert row["resources"]["MULT18"] == {"used": 25, "available": 28} and row["preset"] == "small"
    key = tmp_path / "ulx3s-L8xTL4-40MHz" / "ulx3s-25F.sweep-key.json"
    k = json.loads(key.read_text())
    assert k["ok"] is True and k["key"]["config_hash"] == ART.config.hash
    assert k["key"]["artifact_checksum"] == ART.checksum and k["key"]["hw_config"]["clock_mhz"] == 40.0
    again = area(tmp_path, 8, 4, "25F", fake)
    assert len(fake.calls) == 1 and again["status"] == "cached" and again["fmax_mhz"] == 45.5
    area(tmp_path, 8, 4, "25F", fake, force=True)
    area(tmp_path, 8, 4, "25F", fake, digest="d2")          # the design's sources changed
    assert len(fake.calls) == 3


def test_overflow_is_a_row_and_cached(tmp_path):
    fake = FakeBuild("overflow")
    row = area(tmp_path, 8, 4, "85F", fake)
    assert (row["status"], row["fits"], row["fmax_mhz"]) == ("does not fit", False, None)
    assert row["note"] == "needs 193 MULT18X18D of 156 on the 85F: a larger --variant"
    again = area(tmp_path, 8, 4, "85F", fake)
    assert len(fake.calls) == 1 and again["status"] == "does not fit (cached)"


def test_other_failure_is_not_called_a_misfit(tmp_path):
    row = area(tmp_path, 8, 4, "85F", FakeBuild("fail"))
    assert (row["status"], row["fits"]) == ("failed", None) and row["note"].startswith("yosys failed")


def test_time_budget(tmp_path):
    fake = FakeBuild()
    row = area(tmp_path, 16, 8, "85F", fake, deadline=time.monotonic() + 60)
    assert fake.calls == [] and row["status"] == "not built"
    assert row["note"].startswith("time budget: about 4 min to build, ")   # 2 minutes per 8 lanes


def test_parse_yosys_stat_both_layouts():
    new = "=== top ===\n\n   11579 wires\n   14192 cells\n      17   $scopeinfo\n    1393   CCU2C\n      25   MULT18X18D\n"
    old = "=== top ===\n\n   Number of wires:  11579\n   Number of cells:  14192\n     CCU2C   1393\n     LUT4   5157\n"
    assert bench_hw.parse_yosys_stat(new) == {"$scopeinfo": 17, "CCU2C": 1393, "MULT18X18D": 25}
    assert bench_hw.parse_yosys_stat(old) == {"CCU2C": 1393, "LUT4": 5157}
    with pytest.raises(ValueError, match="no '=== module ===' block"):
        bench_hw.parse_yosys_stat("nothing")


def test_all_gives_hw_half_the_time_left(tmp_path, monkeypatch):
    from bench import all as bench_all

    seen = []
    monkeypatch.setattr(bench_all, "_run_one", lambda n, extra, left: (seen.append((n, extra, left)), ("ok", 0, 1.0))[1])
    assert bench_all.main(["--only", "hw", "--budget-min", "30", "--out-dir", str(tmp_path)]) == 0
    (name, extra, left), = seen
    assert name == "hw" and extra[:2] == ["--out-dir", str(tmp_path.resolve())] and extra[2] == "--budget-min"
    assert float(extra[3]) == pytest.approx(left / 120, abs=0.1) and 29 * 60 < left <= 30 * 60
    seen.clear()
    assert bench_all.main(["--smoke", "--only", "hw", "--out-dir", str(tmp_path)]) == 0
    assert "--budget-min" not in seen[0][1]


def test_summary_hw_table(tmp_path):
    from bench.summary import write_summary

    row = {"variant": "85F", "point": "32x16", "preset": "default", "status": "built",
           "resources": {k: {"used": u, "available": a} for k, u, a in
                         zip(bench_hw.RESOURCES, (35372, 17113, 28, 97), (83640, 83640, 208, 156))},
           "fmax_mhz": 42.66, "cycles_mean": 2288.0, "us_per_image": 53.63, "images_per_s": 18645.5}
    (tmp_path / "hw.json").write_text(json.dumps({"benchmark": "hw", "machine": {"when": "2026-11-24"}, "rows": [row],
                                                  "mode": "hw.build", "clock_mhz": 40.0, "images": 20,
                                                  "commit": "0123456789abcdef", "uncommitted_design_sources": []}))
    md = write_summary(tmp_path).read_text()
    assert "## hw" in md and "| 85F     | 32x16 (default)" in md and "35372 / 83640" in md and "| 53.6" in md
    assert "commit 0123456789ab." in md
