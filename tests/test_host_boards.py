"""One host tool for every board: python -m boards.orangecrab is boards.ulx3s' main with the
OrangeCrab's texts, and python -m boards.ulx3s says what it always said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from boards import orangecrab, ulx3s
from hw.platforms import BOARDS

ROOT = Path(__file__).resolve().parent.parent


def help_text(module: str) -> str:
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return " ".join(r.stdout.split())  # argparse wraps lines


def test_every_build_board_has_a_host_entry():
    assert list(ulx3s.HOST_BOARDS) == list(BOARDS)
    assert all(hb.name == name for name, hb in ulx3s.HOST_BOARDS.items())


def test_ulx3s_help_unchanged():
    text = help_text("boards.ulx3s")
    assert text.startswith("usage: python -m boards.ulx3s [-h] [--port PORT]")
    assert "Host tool for a ULX3S running an STF-FPGA bitstream, over its USB serial port." in text
    assert "--port PORT serial port of the board (the ULX3S's FTDI) (default: /dev/ttyUSB0)" in text


def test_orangecrab_help():
    text = help_text("boards.orangecrab")
    assert text.startswith("usage: python -m boards.orangecrab [-h] [--port PORT]")
    assert ("Host tool for an OrangeCrab r0.2 running an STF-FPGA bitstream, over a 3.3 V USB-serial adapter "
            "on its Feather header.") in text
    assert ("--port PORT serial port of the 3.3 V USB-serial adapter wired to the OrangeCrab's Feather pins 0 "
            "(its RX: the adapter's TX), 1 (its TX: the adapter's RX) and GND (default: /dev/ttyUSB0)") in text
    assert "{info,load,classify}" in text and "--sim" in text  # the same commands and options


@pytest.mark.parametrize("main, board", [(ulx3s.main, "ulx3s"), (orangecrab.main, "orangecrab")])
def test_no_board_answering_names_the_build_command(capsys, main, board):
    # a pseudo-terminal: a real serial device node where nothing ever answers
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        rc = main(["--port", name, "--timeout", "0.05", "--retries", "0", "info"])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert rc == 1 and len(lines) == 1, err
        assert f"no board answered on {name} at 115200 baud" in lines[0]
        assert f"(python -m hw.build --board {board} --program)" in lines[0]
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("main, where", [
    (ulx3s.main, "(ULX3S: its FTDI port on the US1 USB connector, usually /dev/ttyUSB0;"),
    (orangecrab.main, "(OrangeCrab: the USB-serial adapter on Feather pins 0/1, usually /dev/ttyUSB0"),
])
def test_missing_port_says_where_the_boards_port_is(capsys, main, where):
    rc = main(["--port", "/nonexistent/ttyUSB9", "info"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "serial port /nonexistent/ttyUSB9 does not exist; is the board plugged in? " + where in err


@pytest.mark.parametrize("board", ["ulx3s", "orangecrab"])
def test_refusal_hints_name_the_hosts_board(board):
    from boards.host import ConfigMismatch, Host, rebuild_hint
    from tests.test_host import IDENT, FakeDevice

    import numpy as np

    h = Host(FakeDevice(), board=board)
    h.identify()
    with pytest.raises(ConfigMismatch) as e:
        h.classify(np.zeros(64, np.uint8), config_hash32=0x0BADCAFE)
    assert e.value.args[0].endswith(f"rebuild the bitstream for it: python -m hw.build --board {board} "
                                    "--artifact ARTIFACT --program")
    assert rebuild_hint("a.npz", board) == f"python -m hw.build --board {board} --artifact a.npz --program"
    assert IDENT.config_hash32 != 0x0BADCAFE
