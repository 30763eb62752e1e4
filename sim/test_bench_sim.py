"""`python -m bench sim --smoke`: the benchmark's own path runs and reports 4/4 images bit-exact."""

import json

from bench import sim as bench_sim


def test_bench_sim_smoke(sim, tmp_path, capsys):
    if sim != "verilator":
        import pytest

        pytest.skip("the smoke mode runs Verilator only")
    rc = bench_sim.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((tmp_path / "sim.json").read_text())
    (row,) = data["rows"]
    assert row["simulator"] == "verilator" and row["images"] == 4 and row["bit_exact"] == 4
    assert row["images_per_s"] > 0 and row["sim_cycles_per_s"] > 0
    assert "| verilator | 4/4" in out


def test_bench_sim_missing_artifact_is_one_line(tmp_path, capsys):
    rc = bench_sim.main(["--artifact", str(tmp_path / "nope.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "not found" in err and len(err.strip().splitlines()) == 1
