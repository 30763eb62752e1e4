"""python -m bench golden: the smoke mode runs, prints the table and writes sane JSON."""

from __future__ import annotations

import json

from bench.__main__ import available
from bench import golden as bench_golden
from model.config import PRESETS
from quant.artifact import random_artifact, save_artifact


def test_golden_is_a_registered_benchmark():
    assert "golden" in available()


def test_smoke_with_extra_artifact(tmp_path, capsys):
    extra = tmp_path / "extra.npz"
    save_artifact(random_artifact(PRESETS["digits-tiny"].with_stf("off"), seed=1), extra)
    rc = bench_golden.main(["--smoke", "--artifact", str(extra), "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "| artifact" in out and "images/s" in out and "pinned to CPU" in out
    data = json.loads((tmp_path / "golden-smoke.json").read_text())
    assert data["benchmark"] == "golden-smoke" and data["config"] == "digits-tiny"
    assert all(v == "1" for v in data["single_core"]["threads"].values())
    rows = data["rows"]
    labels = {r["artifact"] for r in rows}
    assert "random (seed 0)" in labels and str(extra) in labels
    for r in rows:
        assert r["images"] == 32 and r["batch"] in (1, 32)
        assert r["best_s"] > 0 and abs(r["images_per_s"] - 32 / r["best_s"]) < 1e-6 * r["images_per_s"]
    # per artifact: batched with and without record, and one image at a time
    assert sorted((r["record"], r["batch"]) for r in rows if r["artifact"] == str(extra)) == [
        (False, 1), (False, 32), (True, 32)]


def test_smoke_writes_nothing_without_out_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bench.common.RESULTS", tmp_path)
    assert bench_golden.main(["--smoke"]) == 0
    assert list(tmp_path.iterdir()) == []


def test_errors_are_one_line(tmp_path, capsys):
    assert bench_golden.main(["--artifact", str(tmp_path / "no.npz"), "--smoke"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no.npz: no such artifact file" in err
    assert bench_golden.main(["--repeat", "0"]) == 1
    assert "--repeat must be at least 1" in capsys.readouterr().err
    wrong = tmp_path / "fm.npz"
    save_artifact(random_artifact(PRESETS["fmnist-small"], seed=0), wrong)
    assert bench_golden.main(["--smoke", "--artifact", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an 8x8 digits config" in err
