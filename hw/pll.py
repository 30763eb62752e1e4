"""ECP5 PLL (EHXPLLL): divider search for a requested core clock, and the instance.

The EHXPLLL with feedback from its primary output makes

    f_out = f_in * CLKFB_DIV / CLKI_DIV,   f_vco = f_out * CLKOP_DIV

under the ECP5 limits (Lattice TN1263): phase detector f_in / CLKI_DIV in [3.125, 400] MHz,
VCO in [400, 800] MHz, output in [3.125, 400] MHz. `pll_params` searches every divider triple
the way Project Trellis' ``ecppll`` does (least output error, then the VCO closest to 600 MHz),
so a requested clock that the PLL cannot make exactly gives the nearest one it can; the build
reports the achieved frequency and constrains timing at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth import Elaboratable, Instance, Module, Signal

__all__ = ["PLLParams", "pll_params", "ECP5PLL", "PLLError"]

PFD_MIN, PFD_MAX = 3.125, 400.0
VCO_MIN, VCO_MAX = 400.0, 800.0
OUT_MIN, OUT_MAX = 3.125, 400.0


class PLLError(ValueError):
    """The requested frequency is outside what the ECP5 PLL can make."""


@dataclass(frozen=True)
class PLLParams:
    f_in_mhz: float
    f_req_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_out_mhz(self) -> float:
        return self.f_in_mhz * self.clkfb_div / self.clki_div

    @property
    def f_vco_mhz(self) -> float:
        return self.f_out_mhz * self.clkop_div

    @property
    def f_pfd_mhz(self) -> float:
        return self.f_in_mhz / self.clki_div

    @property
    def clkop_cphase(self) -> int:
        # a mid-period coarse phase on the fed-back output; the loop cancels it at CLKOP
        return (self.clkop_div - 1) // 2

    def describe(self) -> str:
        return (
            f"{self.f_out_mhz:.4g} MHz (requested {self.f_req_mhz:g}) = {self.f_in_mhz:g} MHz x "
            f"{self.clkfb_div} / {self.clki_div}, VCO {self.f_vco_mhz:.4g} MHz / {self.clkop_div}"
        )


def pll_params(f_in_mhz: float, f_req_mhz: float) -> PLLParams:
    """Dividers giving the frequency nearest `f_req_mhz` from `f_in_mhz`."""
    if not OUT_MIN <= f_req_mhz <= OUT_MAX:
        raise PLLError(
            f"the ECP5 PLL output must be in [{OUT_MIN}, {OUT_MAX}] MHz; {f_req_mhz:g} MHz was requested"
        )
    best = None
    # exact rationals: float rounding would break ties differently from ecppll
    f_in, f_req = Fraction(f_in_mhz), Fraction(f_req_mhz)
    for ref in range(1, 129):
        pfd = f_in / ref
        if pfd < PFD_MIN:
            break
        if pfd > PFD_MAX:
            continue
        for fb in range(1, 81):
            fout = pfd * fb
            if fout > OUT_MAX:
                break
            err = abs(fout - f_req)
            for op in range(1, 129):
                vco = fout * op
                if vco < VCO_MIN:
                    continue
                if vco > VCO_MAX:
                    break
                key = (err, abs(vco - 600.0))
                if best is None or key < best[0]:
                    best = (key, ref, fb, op)
    if best is None:
        raise PLLError(f"no ECP5 PLL setting makes {f_req_mhz:g} MHz from {f_in_mhz:g} MHz")
    _, ref, fb, op = best
    return PLLParams(f_in_mhz, f_req_mhz, ref, fb, op)


class ECP5PLL(Elaboratable):
    """One EHXPLLL, primary output fed back.

    Parameters
    ----------
    params : PLLParams

    Attributes
    ----------
    clk_in : Signal, in
        The reference clock (a pad clock: the ULX3S's 25 MHz ``clk25``, the OrangeCrab's 48 MHz ``clk``).
    clk_out : Signal, out
        ``params.f_out_mhz``.
    locked : Signal, out
        High once the loop has locked; hold the core in reset until then.

    Resources: one of the device's EHXPLLL (2 on 12F/25F, 4 on 45F/85F).
    """

    def __init__(self, params: PLLParams):
        self.params = params
        self.clk_in = Signal()
        self.clk_out = Signal()
        self.locked = Signal()

    def elaborate(self, platform):
        p = self.params
        m = Module()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{p.f_in_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p.f_out_mhz:.6g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=p.clkop_cphase,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=self.clk_in,
            o_CLKOP=self.clk_out,
            i_CLKFB=self.clk_out,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_LOCK=self.locked,
        )
        return m
