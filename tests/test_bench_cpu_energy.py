"""python -m bench cpu / energy / all / summary in smoke mode: exact JSON fields, exact AC count."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import cpu as bench_cpu
from bench import energy as bench_energy
from bench.__main__ import available
from model.data import load_dataset
from quant import golden
from quant.artifact import load_artifact

CPU_KEYS = {"benchmark", "machine", "artifact", "config", "dataset", "threads", "torch_version",
            "torch_logits_equal_golden", "float_forward", "rows", "rtl", "rtl_vs_pytorch_batch1", "goal_ratio",
            "goal_met", "note"}
CPU_ROW_KEYS = {"engine", "call", "batch", "images", "repeat", "best_s", "median_s", "images_per_s", "us_per_image"}
ENERGY_KEYS = {"benchmark", "machine", "estimate", "artifact", "config", "dataset", "images", "assumptions",
               "ac_total", "ac_total_by_layer", "per_image", "energy_pj_per_image"}

needs_artifact = pytest.mark.skipif(not bench_cpu.SHIPPED.is_file(), reason="artifacts/digits-tiny.npz not shipped")


def test_registered():
    assert {"cpu", "energy", "latency", "all", "summary"} <= set(available())


@needs_artifact
def test_cpu_smoke_fields(tmp_path, capsys):
    lat = tmp_path / "latency.json"
    lat.write_text(json.dumps({"images": 2, "fmax_mhz": 50.0, "fmax_source": "--fmax", "variants": {
        "event_driven": {"hw_config": {"lanes": 32}, "cycles_mean": 2000.0, "us_per_image": 40.0,
                         "images_per_s": 25000.0}}}))
    rc = bench_cpu.main(["--smoke", "--out-dir", str(tmp_path), "--latency-json", str(lat)])
    out = capsys.readouterr().out
    assert rc == 0, out
    d = json.loads((tmp_path / "cpu-smoke.json").read_text())
    assert set(d) == CPU_KEYS and d["benchmark"] == "cpu-smoke"
    assert d["torch_logits_equal_golden"] is True and d["threads"]["torch"] == 1
    assert d["float_forward"].startswith("none")
    assert [(r["engine"].split(" ")[0] + " " + r["engine"].split(" ")[1], r["batch"]) for r in d["rows"]] == [
        ("golden (numpy)", 1), ("golden (numpy)", 16), ("torch run", 1), ("torch run", 16),
        ("torch STFNet.forward", 1), ("torch STFNet.forward", 16)]
    for r in d["rows"]:
        assert set(r) == CPU_ROW_KEYS
        assert r["images"] == (8 if r["batch"] == 1 else 16) and r["best_s"] > 0
        assert r["images_per_s"] == pytest.approx(r["images"] / r["best_s"])
    ref = d["rows"][4]
    assert d["rtl"]["us_per_image"] == 40.0 and d["rtl"]["fmax_mhz"] == 50.0
    assert d["rtl_vs_pytorch_batch1"] == pytest.approx(ref["us_per_image"] / 40.0)
    assert d["goal_met"] == (d["rtl_vs_pytorch_batch1"] >= 10)
    assert (tmp_path / "cpu-smoke.png").is_file() and "float forward: none" in out


@needs_artifact
def test_cpu_without_latency_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_cpu, "RESULTS", tmp_path)
    assert bench_cpu.main(["--smoke", "--latency-json", str(tmp_path / "absent.json")]) == 0
    assert "no bench/results/latency.json" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # smoke writes nothing without --out-dir


def _independent_ac(art, images) -> int:
    """Spikes x fan-out counted from the record, fan-outs read off the weight matrices."""
    cfg, P = art.config, art.params
    rec = golden.forward(art, images)
    total = 0
    for l in range(cfg.blocks):
        p = f"b{l}."
        inp = rec["enc"] if l == 0 else rec[p + "in"]
        total += int(inp.astype(np.int64).sum()) * sum(P[p + n + ".weight"].shape[1] for n in ("q", "k", "v"))
        total += int((rec[p + "k"].astype(np.int64) * rec[p + "v"]).sum())
        total += int(rec[p + "attn"].astype(np.int64).sum()) * P[p + "o.weight"].shape[1]
        total += int(rec[p + "mlp_in"].astype(np.int64).sum()) * P[p + "fc1.weight"].shape[1]
        total += int(rec[p + "fc1"].astype(np.int64).sum()) * P[p + "fc2.weight"].shape[1]
    total += int(rec["head"].astype(np.int64).sum()) * P["head.weight"].shape[1]
    return total


@needs_artifact
def test_energy_smoke_fields_and_exact_ac(tmp_path, capsys):
    rc = bench_energy.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "NOT a power measurement" in out and "ESTIMATE" in out
    d = json.loads((tmp_path / "energy-smoke.json").read_text())
    assert set(d) == ENERGY_KEYS and d["benchmark"] == "energy-smoke" and d["images"] == 16
    assert "NOT a power measurement" in d["estimate"]
    assert set(d["energy_pj_per_image"]) == {"snn", "ann_t1", "ann_xT"}
    assert set(d["energy_pj_per_image"]["snn"]) == {"ac_pj", "mac_pj", "neurons_pj", "memory_pj", "compute_pj",
                                                    "total_pj"}
    a = d["assumptions"]
    assert (a["e_ac_pj"], a["e_mac_pj"], a["sram_pj_per_bit"]) == (0.9, 4.6, 10 / 64) and "Horowitz" in a["source"]
    art = load_artifact(bench_energy.SHIPPED)
    x, _ = load_dataset("digits", "test")
    ac = _independent_ac(art, x[:16])
    assert isinstance(d["ac_total"], int) and d["ac_total"] == ac
    assert sum(d["ac_total_by_layer"].values()) == ac
    snn = d["per_image"]["snn"]
    assert snn["ac"] == pytest.approx(ac / 16)
    cfg = art.config
    assert snn["mac"] == cfg.tokens * cfg.dim * (cfg.patch_dim + 1 + 2 * cfg.blocks * cfg.timesteps)
    e = d["energy_pj_per_image"]["snn"]
    assert e["compute_pj"] == pytest.approx(0.9 * ac / 16 + 4.6 * snn["mac"])
    assert d["energy_pj_per_image"]["ann_xT"]["compute_pj"] > d["energy_pj_per_image"]["ann_t1"]["compute_pj"]
    assert (tmp_path / "energy-smoke.png").is_file()


@needs_artifact
def test_all_smoke_runs_a_subset_and_writes_summary(tmp_path, capsys):
    from bench import all as bench_all

    assert bench_all.plan()[:3] == [n for n in ("golden", "sim", "latency") if n in available()][:3]
    assert "all" not in bench_all.plan() and "summary" not in bench_all.plan()
    assert "area" in available() and "area" not in bench_all.plan() and "hw" in bench_all.plan()  # area = hw
    rc = bench_all.main(["--smoke", "--only", "energy", "--out-dir", str(tmp_path)])
    assert rc == 0
    md = (tmp_path / "SUMMARY.md").read_text()
    assert "## energy-smoke" in md and "NOT a power measurement" in md and "| SNN" in md
    assert "measured 20" in md and "cpus" in md


def test_summary_generic_and_broken_json(tmp_path):
    from bench.summary import write_summary

    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "other", "machine": {"when": "2026-01-01"},
                                                     "rows": [{"a": 1, "b": 2.5}]}))
    (tmp_path / "broken.json").write_text("{")
    md = write_summary(tmp_path).read_text()
    assert "## other" in md and "| a" in md and "## broken" in md and "unreadable" in md
