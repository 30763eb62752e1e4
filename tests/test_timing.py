"""hw.timing: ranking a nextpnr report's slow endpoints by register group."""

import json

import pytest

from hw import timing


def _report(nets, fmax=None, cells=None):
    rep = {"fmax": fmax or {"$glbnet$clk": {"achieved": 64.25, "constraint": 100.0}},
           "critical_paths": [{"from": "$glbnet$clk", "to": "$glbnet$clk",
                               "path": [{"type": "clk-to-q", "from": {"cell": "a", "port": "CLK"},
                                         "to": {"cell": "a", "port": "Q"}, "delay": 0.5},
                                        {"type": "routing", "from": {"cell": "a", "port": "Q"},
                                         "to": {"cell": "b", "port": "DI"}, "delay": 1.25}]}],
           "detailed_net_timings": nets}
    if cells is not None:
        rep["cells"] = cells
    return rep


def _net(driver, net, *endpoints):
    return {"driver": driver, "port": "Q", "net": net, "event": "rising",
            "endpoints": [{"cell": c, "port": p, "event": "rising", "delay": [d - 1, d]} for c, p, d in endpoints]}


@pytest.mark.parametrize("name, group", [
    ("core.sl.spikes3_TRELLIS_FF_Q", "core.sl.spikes#"),
    ("core.lif.mem[12]", "core.lif.mem[#]"),
    ("core.rq.prod$123", "core.rq.prod"),
    ("$abc$4567$auto$blifparse.cc:396", "$auto"),
    ("core.top.core.$abc$77$auto$blifparse.cc:396", "core.top.core.$auto"),
    ("core.$signature__data$123_TRELLIS_FF_Q_19", "core.$signature__data"),
    ("link.tx", "link.tx"),
    ("core.lif2.v1", "core.lif#.v#"),
])
def test_cell_group_strips_indices_and_suffixes(name, group):
    assert timing.cell_group(name) == group


def test_slow_endpoints_groups_and_ranks_by_worst_arrival():
    nets = [
        _net("core.load_row_TRELLIS_FF_Q", "n1", ("core.sl.spikes0_TRELLIS_FF_Q", "M", 14.2),
             ("core.sl.spikes1_TRELLIS_FF_Q", "M", 13.0), ("core.sl.spikes2_TRELLIS_FF_Q", "M", 9.0)),
        _net("core.ro.best_TRELLIS_FF_Q", "n2", ("core.ro.cls_TRELLIS_FF_Q", "CE", 15.56)),
        _net("core.load_row_TRELLIS_FF_Q", "n3", ("core.sl.spikes7_TRELLIS_FF_Q", "M", 11.0)),
    ]
    groups = timing.slow_endpoints(_report(nets), 10.0)
    assert [(g.cell, g.port, g.driver, g.count) for g in groups] == [
        ("core.ro.cls", "CE", "core.ro.best", 1),
        ("core.sl.spikes#", "M", "core.load_row", 3),   # 9.0 ns is under the bar
    ]
    assert groups[0].worst_ns == 15.56 and groups[1].worst_ns == 14.2
    assert groups[1].worst_cell == "core.sl.spikes0_TRELLIS_FF_Q" and len(groups[1].nets) == 2


def test_lut_inputs_are_not_endpoints_when_cell_types_are_known():
    nets = [_net("r_TRELLIS_FF_Q", "n", ("lut_x", "A", 12.0), ("ff_y", "DI", 12.5))]
    cells = [{"name": "lut_x", "type": "TRELLIS_COMB"}, {"name": "ff_y", "type": "TRELLIS_FF"}]
    groups = timing.slow_endpoints(_report(nets, cells=cells), 10.0)
    assert [(g.cell, g.port) for g in groups] == [("ff_y", "DI")]


def test_report_without_detailed_timing_says_to_rebuild(tmp_path):
    rep = _report([])
    del rep["detailed_net_timings"]
    (tmp_path / timing.REPORT_NAME).write_text(json.dumps(rep))
    with pytest.raises(timing.TimingReportError, match="--detailed-timing"):
        timing.slow_endpoints(timing.load_report(tmp_path), 10.0)


@pytest.mark.parametrize("text, match", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"cells": []}', "not a nextpnr JSON report"),
])
def test_load_report_names_the_problem(tmp_path, text, match):
    p = tmp_path / "r.json"
    if text is not None:
        p.write_text(text)
    with pytest.raises(timing.TimingReportError, match=match):
        timing.load_report(p)


def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    nets = [_net("core.ro.best_TRELLIS_FF_Q", "n2", ("core.ro.cls_TRELLIS_FF_Q", "CE", 15.56))]
    (tmp_path / timing.REPORT_NAME).write_text(json.dumps(_report(nets)))
    out = tmp_path / "slow.json"
    assert timing.main([str(tmp_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Fmax $glbnet$clk: 64.25 MHz (constraint 100.00 MHz)" in text
    assert "critical path $glbnet$clk -> $glbnet$clk: 1.75 ns, 2 steps" in text
    assert "1 endpoints over 10 ns in 1 groups" in text   # default bar: 1000 / 100 MHz
    assert json.loads(out.read_text())["groups"] == [
        {"cell": "core.ro.cls", "port": "CE", "driver": "core.ro.best", "count": 1, "worst_ns": 15.56,
         "worst_cell": "core.ro.cls_TRELLIS_FF_Q", "nets": 1}]


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert timing.main([str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
