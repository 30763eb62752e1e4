"""bench fmax: one hw.build per seed, rows from each build's reports, min / median / max.

The builds are replaced by a fake runner that writes what hw.build writes (report.json and
nextpnr's detailed report) or fails like it, so the bench's parsing and summary are checked
exactly without a 12-minute place and route. `python -m bench fmax --smoke` runs the real tools.
"""

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from bench import fmax

# seed -> (Fmax MHz, [(endpoint cell, port, arrival ns)]) of the fake builds
FAKE = {
    3: (61.97, [("core.sl.pending0_TRELLIS_FF_Q_10", "DI", 16.14), ("core.sl.pending1_TRELLIS_FF_Q", "DI", 12.0),
                ("core.enc.mac_prod4_TRELLIS_FF_Q", "M", 15.6), ("core.x_TRELLIS_FF_Q", "DI", 9.5)]),
    5: (72.25, [("core.prp__data_TRELLIS_FF_Q_33", "DI", 13.84)]),
    8: (56.83, []),
}


def _args(tmp_path, **kw):
    a = dict(board="ulx3s", variant="85F", artifact=str(fmax.SHIPPED_ARTIFACT), hw_config=None, clock=100.0,
             seeds="3,5,8", placer="static", jobs=2, toolchain="auto", build_dir=str(tmp_path / "b"), shell=False,
             smoke=False, out_dir=None)
    a.update(kw)
    return argparse.Namespace(**a)


def _fake_runner(fail_seed=None):
    def runner(cmd, cwd, capture_output, text):
        seed = int(cmd[cmd.index("--seed") + 1])
        out = Path(cmd[cmd.index("--out") + 1]) / "ulx3s-85F"
        if seed == fail_seed:
            return subprocess.CompletedProcess(cmd, 1, "", "hw.build: nextpnr: 85F: LUT4 over by 120 (fit)\n")
        out.mkdir(parents=True)
        f, eps = FAKE[seed]
        rep = {"ok": True, "core_clock": "$glbnet$clk", "timing_met": False,
               "fmax_mhz": {"$glbnet$clk": {"achieved": f, "constrained": 100.0, "pass": False}},
               "critical_path": {"$glbnet$clk": {"from": "a.Q", "to": "b.DI", "ns": round(1000 / f, 2)}},
               "resources": {"LUT4": {"used": 47654}, "FF": {"used": 34774}}, "seconds": {"nextpnr": 600.0 + seed}}
        (out / "report.json").write_text(json.dumps(rep))
        nets = [{"driver": "drv_TRELLIS_FF_Q", "net": f"n{i}", "port": "Q",
                 "endpoints": [{"cell": c, "port": p, "delay": [d - 1, d]}]} for i, (c, p, d) in enumerate(eps)]
        nets.append({"driver": "d", "net": "fast", "port": "Q", "endpoints": [{"cell": "y_TRELLIS_FF_Q", "port": "DI",
                                                                               "delay": [1.0, 2.0]}]})
        (out / "nextpnr-report.json").write_text(json.dumps({"fmax": {}, "detailed_net_timings": nets}))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return runner


def test_rows_and_summary_from_each_seeds_build(tmp_path):
    res = fmax.run(_args(tmp_path), runner=_fake_runner(), log=lambda s: None)
    rows = {r["seed"]: r for r in res["rows"]}
    assert [r["seed"] for r in res["rows"]] == [3, 5, 8]
    assert {s: r["fmax_mhz"] for s, r in rows.items()} == {3: 61.97, 5: 72.25, 8: 56.83}
    # over 10 ns: seed 3 has 3 endpoints in 2 groups (pending# DI twice, mac_prod# M); 9.5 and 2.0 are not
    assert (rows[3]["slow_endpoints"], rows[3]["slow_groups"]) == (3, 2)
    assert rows[3]["worst_groups"][0]["cell"] == "core.sl.pending#" and rows[3]["worst_groups"][0]["count"] == 2
    assert (rows[5]["slow_endpoints"], rows[5]["slow_groups"]) == (1, 1)
    assert (rows[8]["slow_endpoints"], rows[8]["slow_groups"]) == (0, 0)
    assert rows[5]["nextpnr_s"] == 605.0 and rows[5]["lut4"] == 47654 and rows[5]["critical_ns"] == 13.84
    assert res["summary"] == {"built": 3, "min_mhz": 56.83, "median_mhz": 61.97, "max_mhz": 72.25,
                              "spread_mhz": 15.42, "best_seed": 5}
    text = fmax.report(res)
    assert "min 56.83 / median 61.97 / max 72.25 MHz" in text and "3 in 2" in text


def test_a_failed_seed_is_a_row_with_the_build_error(tmp_path):
    res = fmax.run(_args(tmp_path), runner=_fake_runner(fail_seed=5), log=lambda s: None)
    rows = {r["seed"]: r for r in res["rows"]}
    assert rows[5]["status"] == "failed" and "LUT4 over by 120" in rows[5]["note"]
    assert res["summary"]["built"] == 2 and res["summary"]["max_mhz"] == 61.97
    assert "failed" in fmax.report(res)


def test_each_seed_is_its_own_forced_timing_driven_build(tmp_path):
    a = _args(tmp_path, hw_config="small")
    cmd = fmax.build_command(a, 7, Path("/x/seed7"))
    for flag in ("--seed", "--detailed-timing", "--allow-timing-fail", "--force", "--quiet"):
        assert flag in cmd
    assert cmd[cmd.index("--seed") + 1] == "7" and cmd[cmd.index("--out") + 1] == "/x/seed7"
    assert cmd[cmd.index("--hw-config") + 1] == "small" and cmd[cmd.index("--clock") + 1] == "100"
    shell = fmax.build_command(_args(tmp_path, shell=True), 1, Path("/x"))
    assert "--shell" in shell and "--artifact" not in shell


@pytest.mark.parametrize("spec, match", [("1,x", "not an integer"), ("2,-1", "negative"), ("4,4", "twice")])
def test_bad_seeds_are_refused(spec, match):
    with pytest.raises(SystemExit, match=match):
        fmax.parse_seeds(spec)


def test_missing_artifact_is_refused_before_building(tmp_path):
    def never(*a, **k):
        raise AssertionError("built anyway")
    with pytest.raises(SystemExit, match="no such file"):
        fmax.run(_args(tmp_path, artifact=str(tmp_path / "none.npz")), runner=never, log=lambda s: None)


@pytest.mark.parametrize("kw, match", [({"board": "nope"}, "unknown board 'nope'"),
                                       ({"variant": "99F"}, "unknown ulx3s variant '99F'")])
def test_unknown_board_or_variant_is_refused_before_building(tmp_path, kw, match):
    def never(*a, **k):
        raise AssertionError("built anyway")
    with pytest.raises(SystemExit, match=match):
        fmax.run(_args(tmp_path, **kw), runner=never, log=lambda s: None)


def test_a_run_where_no_seed_built_writes_nothing(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "fmax.json").write_text('{"kept": true}')
    rc = fmax.main(["--seeds", "5", "--build-dir", str(tmp_path / "b"), "--out-dir", str(out)],
                   runner=_fake_runner(fail_seed=5))
    assert rc == 1 and "no seed built" in capsys.readouterr().err
    assert json.loads((out / "fmax.json").read_text()) == {"kept": True}
