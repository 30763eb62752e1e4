"""python -m bench stf / accuracy: exact measures, smoke runs with exact JSON fields, the float mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench import accuracy as bench_accuracy
from bench import stf as bench_stf
from bench.__main__ import available
from bench.train_variants import float_accuracy, run_name, unquantized_weights
from model.config import PRESETS
from quant.artifact import random_artifact

STF_RUN_KEYS = {"seed", "train_seconds", "reused_run", "run", "golden_accuracy", "qat_accuracy", "qat_equals_integer",
                "golden_logits_equal", "golden_checked_images", "temporal_golden_equal", "test_images", "layers", "fgsm",
                "temporal"}
ACC_ROW_KEYS = {"dataset", "config", "config_hash", "weight_bits", "timesteps", "epochs", "seed", "train_images",
                "test_images", "train_seconds", "float_accuracy", "qat_accuracy", "golden_accuracy",
                "qat_golden_logits_equal", "rtl"}


def test_registered_and_helper_hidden():
    names = available()
    assert {"stf", "accuracy"} <= set(names) and "train_variants" not in names


def test_pattern_stats_exact():
    # 2 images, T = 2, 2 neurons: patterns (code = s0 + 2 s1) image0: [1, 3], image1: [1, 0]
    s = np.array([[[1, 1], [0, 1]], [[1, 0], [0, 0]]])  # [B, T, neurons]
    st = bench_stf.pattern_stats(s)
    assert st["distinct"] == 3
    # pooled codes 1, 3, 1, 0: p = (1/4, 1/2, 1/4) -> 1.5 bits
    assert st["entropy_bits"] == pytest.approx(1.5)
    # neuron 0 always code 1 (0 bits); neuron 1 codes 3 and 0 (1 bit)
    assert st["neuron_entropy_bits"] == pytest.approx(0.5)
    # non-constant trains: code 1 twice (10 over t) of 4 trains
    assert st["nonconstant"] == pytest.approx(0.5)


def test_at_timesteps_reuses_last_tspe_row():
    art = random_artifact(PRESETS["digits-tiny"].with_stf("both"), seed=3)
    pos = art.params["enc.pos"]
    a8 = bench_stf.at_timesteps(art, 8)
    assert a8.config.timesteps == 8 and a8.params["enc.pos"].shape[0] == 8
    assert np.array_equal(a8.params["enc.pos"][:4], pos) and all(np.array_equal(a8.params["enc.pos"][t], pos[3])
                                                                for t in range(4, 8))
    a2 = bench_stf.at_timesteps(art, 2)
    assert np.array_equal(a2.params["enc.pos"], pos[:2])
    from model.data import load_dataset
    from quant import golden

    x, _ = load_dataset("digits", "test")
    assert np.array_equal(golden.forward(a8, x[:8], record=False)["logits"], bench_stf.int_logits(a8, x[:8]))


def test_run_name_names_every_setting():
    cfg = PRESETS["digits-tiny"]
    a = run_name(cfg, "digits", 0, 60, 0, 0, 0.1)
    assert a == f"digits-digits-tiny-both-w4-T4-s0-e60-p0.1-ema0.995-{cfg.hash[:8]}"
    assert run_name(cfg, "digits", 0, 60, 200, 50, 0.1, 0.999) == (
        f"digits-digits-tiny-both-w4-T4-s0-e60-n200-m50-p0.1-ema0.999-{cfg.hash[:8]}")


def test_unquantized_weights_restores_and_differs():
    from model.data import load_dataset
    from model.network import STFNet

    torch.manual_seed(0)
    m = STFNet(PRESETS["digits-tiny"])
    w_int, _ = m.enc.int_weight()
    with unquantized_weights(m):
        w_float, _ = m.enc.int_weight()
        assert not torch.equal(w_float, torch.round(w_float))  # not integers
        assert torch.equal(torch.round(w_float), w_int)  # Brevitas rounds to nearest inside the range
    assert torch.equal(m.enc.int_weight()[0], w_int)
    x, y = load_dataset("digits", "test")
    assert 0.0 <= float_accuracy(m, x[:16], y[:16]) <= 1.0


def test_stf_smoke_fields(tmp_path, capsys):
    rc = bench_stf.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    d = json.loads((tmp_path / "stf-smoke.json").read_text())
    assert d["benchmark"] == "stf-smoke" and d["smoke"] is True and list(d["datasets"]) == ["digits"]
    dg = d["datasets"]["digits"]
    assert list(dg["modes"]) == ["off", "tspe", "tf", "both"]
    b = dg["budget"]
    assert (b["epochs"], b["train_images"], b["test_images"], b["golden_images"], b["analysis_images"], b["seeds"]) == (
        2, 200, 360, 32, 32, [0])
    for m, e in dg["modes"].items():
        (r,) = e["runs"]
        assert set(r) == STF_RUN_KEYS
        assert r["golden_logits_equal"] and r["qat_equals_integer"] and r["temporal_golden_equal"]
        assert r["qat_accuracy"] == r["golden_accuracy"]
        assert list(r["fgsm"]) == ["clean", "1", "2", "4"] and list(r["temporal"]) == ["1", "2", "3", "4", "6", "8"]
        assert r["fgsm"]["clean"] == r["temporal"]["4"]
        assert list(r["layers"]) == ["enc", "b0.q", "b0.k", "b0.v", "b0.kv", "b0.attn", "b0.mlp_in", "b0.fc1", "head"]
        for st in r["layers"].values():
            assert 0 <= st["rate"] <= 1 and 0 <= st["entropy_bits"] <= 4 and 1 <= st["distinct"] <= 16
        a = e["aggregate"]
        assert a["golden_accuracy"] == {"mean": r["golden_accuracy"], "std": 0.0, "n": 1}
    # without TSPE/TF the encoder input is the same at every step: its pattern statistics of off and tf
    # differ only through training; with a TSPE table the encoder can fire any pattern
    assert (tmp_path / "stf-smoke.png").is_file() and (tmp_path / "stf-smoke.md").is_file()
    assert "Temporal sensitivity" in (tmp_path / "stf-smoke.md").read_text()


def test_stf_smoke_writes_nothing_without_out_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_stf, "RESULTS", tmp_path)
    import bench.common

    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    assert bench_stf.main(["--smoke", "--modes", "off"]) == 0
    assert list(tmp_path.iterdir()) == []


def test_stf_rejects_unknown_mode(capsys):
    with pytest.raises(SystemExit, match="unknown STF mode 'spe'"):
        bench_stf.main(["--smoke", "--modes", "spe"])


def test_accuracy_smoke_fields(tmp_path, capsys, monkeypatch):
    calls = []

    def fake_rtl(art, images, labels, hw_config, sim="verilator"):
        calls.append((art.config.name, len(images), hw_config))
        return {"images": len(images), "bit_exact": len(images), "rtl_accuracy": 0.5}

    monkeypatch.setattr(bench_accuracy, "rtl_sample", fake_rtl)
    rc = bench_accuracy.main(["--smoke", "--out-dir", str(tmp_path)])
    assert rc == 0
    d = json.loads((tmp_path / "accuracy-smoke.json").read_text())
    assert d["benchmark"] == "accuracy-smoke" and d["epochs"] == 2 and d["train_subset"] == 200
    assert [(r["weight_bits"], r["timesteps"]) for r in d["rows"]] == [(2, 4), (4, 4)]
    assert calls == [("digits-tiny-w2-t4", 2, "small"), ("digits-tiny", 2, "small")]
    for r in d["rows"]:
        assert set(r) == ACC_ROW_KEYS and r["test_images"] == 360 and r["qat_golden_logits_equal"] is True
        assert r["qat_accuracy"] == r["golden_accuracy"] and 0 <= r["float_accuracy"] <= 1
    assert (tmp_path / "accuracy-smoke.png").is_file()


@pytest.mark.slow
def test_accuracy_rtl_sample_is_bit_exact():
    """Verilator on a random digits artifact (minutes: a whole-network compile)."""
    from model.data import load_dataset

    art = random_artifact(PRESETS["digits-tiny"], seed=0)
    x, y = load_dataset("digits", "test")
    r = bench_accuracy.rtl_sample(art, x[:2], y[:2], "small")
    if "skipped" in r:
        pytest.skip(r["skipped"])
    assert r["bit_exact"] == 2 and r["class_agreement"] == 1.0


def test_train_variant_reuses_a_finished_run(tmp_path):
    from bench.train_variants import train_variant

    cfg = PRESETS["digits-tiny"].with_stf("off")
    a = train_variant(cfg, "digits", tmp_path, epochs=1, seed=5, train_subset=64, test_subset=32)
    assert not a.reused and a.run_dir.name == run_name(cfg, "digits", 5, 1, 64, 32, 0.1)
    assert "epoch 1/1" in (a.run_dir / "train.log").read_text()
    b = train_variant(cfg, "digits", tmp_path, epochs=1, seed=5, train_subset=64, test_subset=32)
    assert b.reused and b.artifact.checksum == a.artifact.checksum and b.metrics == a.metrics
    c = train_variant(cfg, "digits", tmp_path, epochs=1, seed=6, train_subset=64, test_subset=32)
    assert not c.reused and c.run_dir != a.run_dir


def test_check_cache_lists_untrained_runs_and_trains_nothing(tmp_path, capsys):
    from bench.train_variants import train_variant

    argv = ["--datasets", "digits", "--modes", "off", "--seeds", "1", "--epochs", "1", "--runs-dir", str(tmp_path),
            "--check-cache"]
    assert bench_stf.main(argv) == 3
    cfg = PRESETS["digits-tiny"].with_stf("off")
    name = run_name(cfg, "digits", 0, 1, 0, 0, 0.1, 0.995)
    out = capsys.readouterr().out
    assert f"1 training run(s) not yet in {tmp_path} (first: {name})" in out and "`python -m bench stf`" in out
    assert list(tmp_path.iterdir()) == [], "--check-cache must not train or write anything"
    train_variant(cfg, "digits", tmp_path, epochs=1, seed=0)
    assert bench_stf.main(argv) == 0
    assert "every training run it needs is cached" in capsys.readouterr().out


def test_accuracy_check_cache(tmp_path, capsys):
    argv = ["--weight-bits", "4", "--timesteps", "2", "--epochs", "1", "--runs-dir", str(tmp_path), "--check-cache"]
    assert bench_accuracy.main(argv) == 3
    out = capsys.readouterr().out
    assert "2 training run(s) not yet in" in out and "digits-digits-tiny-both-w4-T4-s0-e1-p0.1-ema0.995" in out


def test_all_skips_benches_whose_runs_are_not_trained(tmp_path, monkeypatch, capsys):
    from bench import all as bench_all

    ran = []
    monkeypatch.setattr(bench_all, "_run_one", lambda n, extra, left: (ran.append(n), ("ok", 0, 1.0))[1])
    monkeypatch.setattr(bench_all, "_untrained", lambda n, t: "bench stf: 24 training run(s) not yet in runs/bench"
                        if n == "stf" else None)
    assert bench_all.main(["--only", "energy,stf,accuracy", "--out-dir", str(tmp_path)]) == 0
    assert ran == ["energy", "accuracy"]
    out = capsys.readouterr().out
    assert "24 training run(s) not yet in runs/bench" in out and "skipped (runs not trained)" in out
