"""hw.pll.pll_params: the EHXPLLL divider search, for the ULX3S's 25 MHz and the OrangeCrab's
48 MHz oscillators.

The expected dividers are Project Trellis' ``ecppll -i F_IN -o F_OUT`` answers (yowasp-ecppll
0.11, run by hand and, where the venv has it, again by `test_same_as_ecppll`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from hw.pll import OUT_MAX, OUT_MIN, PFD_MIN, VCO_MAX, VCO_MIN, PLLError, pll_params

# (f_in, f_req) -> (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, f_out)
CASES = {
    (25.0, 100.0): (1, 4, 6, 100.0),
    (25.0, 40.0): (5, 8, 15, 40.0),
    (25.0, 33.0): (3, 4, 18, 100 / 3),
    (48.0, 40.0): (6, 5, 15, 40.0),      # the OrangeCrab default: exact, VCO 600
    (48.0, 100.0): (12, 25, 6, 100.0),
    (48.0, 44.0): (12, 11, 14, 44.0),
    (48.0, 48.0): (1, 1, 12, 48.0),
    (48.0, 33.0): (13, 9, 18, 48 * 9 / 13),
    # 50 = 48 x 25 / 24 needs a 2 MHz phase detector, under the 3.125 MHz floor; the nearest is
    # 48 x 16 / 15 = 51.2 (1.2 MHz off; 48 x 1 / 1 is 2 off)
    (48.0, 50.0): (15, 16, 12, 51.2),
}


@pytest.mark.parametrize("f_in, f_req", list(CASES))
def test_dividers(f_in, f_req):
    p = pll_params(f_in, f_req)
    ref, fb, op, f_out = CASES[f_in, f_req]
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == (ref, fb, op)
    assert p.f_out_mhz == pytest.approx(f_out, abs=1e-9)
    assert p.f_vco_mhz == pytest.approx(f_out * op, abs=1e-9)


@pytest.mark.parametrize("f_in", [25.0, 48.0])
def test_every_answer_is_within_the_limits_and_nearest(f_in):
    """Every 13th whole MHz the PLL may output (each search takes about 50 ms): the answer obeys
    TN1263's limits, and no divider triple within them is closer (brute force on exact
    fractions)."""
    reachable = set()
    for ref in range(1, 129):
        if Fraction(f_in) / ref < PFD_MIN:
            break
        for fb in range(1, 81):
            fout = Fraction(f_in) * fb / ref
            if fout <= OUT_MAX and any(VCO_MIN <= fout * op <= VCO_MAX for op in range(1, 129)):
                reachable.add(fout)
    for f_req in range(4, 401, 13):
        p = pll_params(f_in, f_req)
        assert PFD_MIN <= p.f_pfd_mhz and VCO_MIN <= p.f_vco_mhz <= VCO_MAX, p.describe()
        assert OUT_MIN <= p.f_out_mhz <= OUT_MAX, p.describe()
        best = min(abs(f - f_req) for f in reachable)
        assert abs(Fraction(f_in) * p.clkfb_div / p.clki_div - f_req) == best, p.describe()


def test_out_of_range_is_refused_with_the_range():
    with pytest.raises(PLLError, match=r"must be in \[3.125, 400.0\] MHz; 500 MHz was requested"):
        pll_params(48.0, 500.0)
    with pytest.raises(PLLError, match=r"3 MHz was requested"):
        pll_params(48.0, 3.0)


def _ecppll() -> str | None:
    return shutil.which("yowasp-ecppll") or next(
        (str(p) for p in [Path(sys.executable).parent / "yowasp-ecppll"] if p.is_file()), None)


@pytest.mark.skipif(_ecppll() is None, reason="yowasp-ecppll is not installed")
@pytest.mark.parametrize("f_in, f_req", [(25.0, 100.0), (25.0, 33.0), (48.0, 40.0), (48.0, 33.0), (48.0, 50.0)])
def test_same_as_ecppll(tmp_path, f_in, f_req):
    r = subprocess.run([_ecppll(), "-i", f"{f_in:g}", "-o", f"{f_req:g}", "-f", str(tmp_path / "pll.v")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = {k: int(v) for k, v in re.findall(r"(Refclk|Feedback|clkout0) divisor: (\d+)", r.stdout)}
    p = pll_params(f_in, f_req)
    assert got == {"Refclk": p.clki_div, "Feedback": p.clkfb_div, "clkout0": p.clkop_div}
