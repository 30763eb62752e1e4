"""`RegisteredMultiplier`: a product between registers, on ECP5 the MULT18X18D's own registers.

Why: Yosys (0.70) maps ``a * b`` onto a MULT18X18D with every register of the block bypassed,
and nextpnr-ecp5 then times the block as a combinational A/B -> P path (its
``MULT18X18D_REGS_NONE`` timing, about 3.9 ns). A product between two fabric registers was one
register-to-register path: routing into the DSP row, the multiplier, routing out. That path was
11-17 ns on the 85F depending on the placement (docs/build.md). With the block's input registers
(``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``) and output register (``REG_OUTPUT_CLK``) clocked,
nextpnr times the block as a clocked cell: the fabric sees a register input (routing in) and a
register output (routing out), and the multiplier lies between the block's own registers.

On a Lattice ECP5 platform (``platform.family == "ecp5"``: ``hw.build``) an operand pair that
fits the block (`wants_dsp`: each 2 to 18 bits signed, 17 unsigned) becomes one instantiated
MULT18X18D. Everywhere else (Amaranth's simulator, ``hw.verilog``, other platforms, wider
operands) the same registers are fabric flip-flops with ``*`` between them, so every simulation
computes what the board computes, cycle for cycle. Yosys ships no simulation model of
MULT18X18D; `MULT18X18DModel` is this project's model of the subset used here, driven by the
same parameter and port map as the instance (`mult18x18d_map`), and tests/test_hw_dsp.py checks
the instance's wiring (extension, signedness, registers, latency) against it.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_bool, kept_register

__all__ = ["RegisteredMultiplier", "MULT18X18DModel", "DSP_BITS", "IMPLEMENTATIONS", "fits_dsp",
           "wants_dsp", "product_shape", "mult18x18d_map", "is_ecp5"]

#: Operand width of an ECP5 MULT18X18D (two's complement with SIGNEDA/SIGNEDB high).
DSP_BITS = 18
#: Width of its product output P.
DSP_P_BITS = 2 * DSP_BITS
#: RegisteredMultiplier(implementation=...): "auto" picks "mult18x18d" on ECP5 when the
#: operands fit, else "fabric"; "model" is the instance's map driving MULT18X18DModel (tests).
IMPLEMENTATIONS = ("auto", "fabric", "mult18x18d", "model")


def is_ecp5(platform) -> bool:
    return getattr(platform, "family", None) == "ecp5"


def _signed_bits(shape: Shape) -> int:
    """Two's-complement bits that hold every value of `shape` (an unsigned one needs one more)."""
    return shape.width if shape.signed else shape.width + 1


def fits_dsp(a_shape, b_shape) -> bool:
    """Whether ``a * b`` of these shapes is one MULT18X18D in signed mode."""
    return max(_signed_bits(Shape.cast(a_shape)), _signed_bits(Shape.cast(b_shape))) <= DSP_BITS


def wants_dsp(a_shape, b_shape) -> bool:
    """`fits_dsp`, and both operands at least 2 bits: Yosys maps narrower products to logic, and
    so does "auto" (a 1-bit operand is an AND, not a multiplier block)."""
    return fits_dsp(a_shape, b_shape) and min(Shape.cast(a_shape).width, Shape.cast(b_shape).width) >= 2


def product_shape(a_shape, b_shape) -> Shape:
    """Amaranth's shape of ``a * b`` (an unsigned operand against a signed one gains a bit)."""
    return (Signal(a_shape) * Signal(b_shape)).shape()


def mult18x18d_map(a18: Value, b18: Value, p36: Value, *, input_registers: bool, clk: Value) -> tuple[dict, dict]:
    """The (parameters, ports) of a MULT18X18D computing ``p36 = a18 * b18`` (signed, 18 x 18 -> 36).

    Registers: A and B on CLK0 when `input_registers`, P on CLK0 always; CE0 tied high and RST0
    low (the registers load every cycle); the pipeline register and the C input unused. Ports
    are keyed by the block's pin names (``A0`` .. ``A17``, ``P0`` .. ``P35``).
    """
    in_reg = "CLK0" if input_registers else "NONE"
    params = {"REG_INPUTA_CLK": in_reg, "REG_INPUTB_CLK": in_reg, "REG_OUTPUT_CLK": "CLK0",
              "REG_PIPELINE_CLK": "NONE", "REG_INPUTC_CLK": "NONE",
              "REG_INPUTA_CE": "CE0", "REG_INPUTB_CE": "CE0", "REG_OUTPUT_CE": "CE0",
              "REG_INPUTA_RST": "RST0", "REG_INPUTB_RST": "RST0", "REG_OUTPUT_RST": "RST0"}
    ports = {f"A{i}": a18[i] for i in range(DSP_BITS)}
    ports.update({f"B{i}": b18[i] for i in range(DSP_BITS)})
    ports.update({"SIGNEDA": Const(1, 1), "SIGNEDB": Const(1, 1), "SOURCEA": Const(0, 1), "SOURCEB": Const(0, 1),
                  "CLK0": clk, "CE0": Const(1, 1), "RST0": Const(0, 1)})
    outputs = {f"P{i}": p36[i] for i in range(DSP_P_BITS)}
    return params, {"inputs": ports, "outputs": outputs}


class MULT18X18DModel(Elaboratable):
    """This project's model of an ECP5 MULT18X18D, for the settings `mult18x18d_map` uses.

    ``P = A * B``, each operand two's complement when its SIGNED pin is high (unsigned when low),
    A and B through the input registers when ``REG_INPUT{A,B}_CLK == "CLK0"``, P through the
    output register when ``REG_OUTPUT_CLK == "CLK0"``; each register loads when CE0 is high and
    clears synchronously when RST0 is high. Anything else raises ValueError rather than being
    modelled wrongly.
    """

    _ALLOWED = {"REG_INPUTA_CLK": ("NONE", "CLK0"), "REG_INPUTB_CLK": ("NONE", "CLK0"),
                "REG_OUTPUT_CLK": ("NONE", "CLK0"), "REG_PIPELINE_CLK": ("NONE",), "REG_INPUTC_CLK": ("NONE",),
                "REG_INPUTA_CE": ("CE0",), "REG_INPUTB_CE": ("CE0",), "REG_OUTPUT_CE": ("CE0",),
                "REG_INPUTA_RST": ("RST0",), "REG_INPUTB_RST": ("RST0",), "REG_OUTPUT_RST": ("RST0",)}

    def __init__(self, params: dict, ports: dict):
        for key, allowed in self._ALLOWED.items():
            if params.get(key) not in allowed:
                raise ValueError(f"MULT18X18DModel: {key}={params.get(key)!r} is not modelled (only {allowed})")
        unknown = set(params) - set(self._ALLOWED)
        if unknown:
            raise ValueError(f"MULT18X18DModel: parameters {sorted(unknown)} are not modelled")
        for pin in ("SOURCEA", "SOURCEB"):
            v = ports["inputs"].get(pin)
            if not (isinstance(v, Const) and v.value == 0):
                raise ValueError(f"MULT18X18DModel: only {pin} = 0 (operands from the A and B pins) is modelled")
        self.params, self.inputs, self.outputs = params, ports["inputs"], ports["outputs"]

    def elaborate(self, platform):
        m = Module()
        q = self.inputs
        ce, rst = q["CE0"], q["RST0"]

        def pins(prefix, n):
            v = Signal(n, name=f"pins_{prefix}")
            m.d.comb += [v[i].eq(q[f"{prefix}{i}"]) for i in range(n)]
            return v

        def stage(value, setting, name):
            if self.params[setting] == "NONE":
                return value
            r = Signal(value.shape(), name=name, reset_less=True)
            with m.If(rst):
                m.d.sync += r.eq(0)
            with m.Elif(ce):
                m.d.sync += r.eq(value)
            return r

        a_pins, b_pins = pins("A", DSP_BITS), pins("B", DSP_BITS)
        a_val = Signal(signed(DSP_BITS + 1), name="model_a_in")
        b_val = Signal(signed(DSP_BITS + 1), name="model_b_in")
        m.d.comb += [a_val.eq(Mux(q["SIGNEDA"], a_pins.as_signed(), a_pins)),
                     b_val.eq(Mux(q["SIGNEDB"], b_pins.as_signed(), b_pins))]
        a = stage(a_val, "REG_INPUTA_CLK", "model_a")
        b = stage(b_val, "REG_INPUTB_CLK", "model_b")
        prod = Signal(DSP_P_BITS, name="model_prod")
        m.d.comb += prod.eq(a * b)  # the low 36 bits, as the block's P
        p = stage(prod, "REG_OUTPUT_CLK", "model_p")
        m.d.comb += [out.eq(p[int(name[1:])]) for name, out in self.outputs.items()]
        return m


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` of the operands presented `latency` cycles earlier; no enable, no reset.

    Parameters
    ----------
    a_shape, b_shape : Amaranth shapes of the operands.
    input_registers : bool   register a and b, then the product (latency 2); False: only the
                             product (latency 1).
    implementation : one of IMPLEMENTATIONS (default "auto": a MULT18X18D with its own
                             registers on an ECP5 platform when `wants_dsp`, fabric registers
                             elsewhere). A constant operand (a baked one-row ROM) keeps the
                             instance: Yosys maps a product with a wide constant onto a
                             MULT18X18D as well, with its registers bypassed (s23b).
    name : str               prefix of the register and instance names.

    Ports
    -----
    a : In(a_shape), b : In(b_shape)
    p : Out(product_shape(a_shape, b_shape))   exact: the full product of the operands.

    Latency: 2 cycles with `input_registers` (a and b registered, then the product), 1 without.
    Throughput one product per cycle. The fabric registers are reset-less (data only); the
    MULT18X18D's are cleared by the configuration's GSR and never after.

    Resources: one MULT18X18D on ECP5 when the operands fit (its registers are inside the block),
    else Yosys's mapping of ``*`` plus len(a) + len(b) + len(p) flip-flops.
    """

    def __init__(self, a_shape, b_shape, *, input_registers: bool = True, implementation: str = "auto",
                 name: str = "mul"):
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self.input_registers = check_bool("RegisteredMultiplier", "input_registers", input_registers)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"RegisteredMultiplier: implementation must be one of {IMPLEMENTATIONS}, "
                             f"not {implementation!r}")
        if implementation in ("mult18x18d", "model") and not fits_dsp(self.a_shape, self.b_shape):
            raise ValueError(f"RegisteredMultiplier: {self.a_shape} x {self.b_shape} does not fit one MULT18X18D "
                             f"(at most {DSP_BITS} bits signed or {DSP_BITS - 1} unsigned each); use 'auto' or 'fabric'")
        self.implementation, self.name = implementation, name
        self.latency = 2 if self.input_registers else 1
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape),
                          "p": Out(product_shape(self.a_shape, self.b_shape))})

    def resolved(self, platform) -> str:
        """The implementation elaborated on `platform`."""
        if self.implementation != "auto":
            return self.implementation
        if not (is_ecp5(platform) and wants_dsp(self.a_shape, self.b_shape)):
            return "fabric"
        # a stand-in ECP5 platform of the tests asks for the model in the instance's place, so
        # that a whole component can be simulated with the instance's wiring
        return "model" if getattr(platform, "mult18x18d_model", False) else "mult18x18d"

    def elaborate(self, platform):
        m = Module()
        kind = self.resolved(platform)
        if kind == "fabric":
            a, b = self.a, self.b
            if self.input_registers:
                # kept: Yosys's opt_merge otherwise folds an operand register into an equal
                # flip-flop elsewhere, which then sits between its loads, away from the multiplier
                a, b = kept_register(self.a_shape, f"{self.name}_a"), kept_register(self.b_shape, f"{self.name}_b")
                m.d.sync += [a.eq(self.a), b.eq(self.b)]
            p = Signal(self.p.shape(), name=f"{self.name}_p", reset_less=True)
            m.d.sync += p.eq(a * b)
            m.d.comb += self.p.eq(p)
            return m
        a18 = Signal(signed(DSP_BITS), name=f"{self.name}_a18")
        b18 = Signal(signed(DSP_BITS), name=f"{self.name}_b18")
        p36 = Signal(signed(DSP_P_BITS), name=f"{self.name}_p36")
        # an unsigned operand is zero-extended, a signed one sign-extended (Amaranth's .eq)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36)]
        params, ports = mult18x18d_map(a18, b18, p36, input_registers=self.input_registers, clk=ClockSignal("sync"))
        if kind == "model":
            m.submodules.dsp = MULT18X18DModel(params, ports)
        else:
            m.submodules.dsp = Instance("MULT18X18D", **{f"p_{k}": v for k, v in params.items()},
                                        **{f"i_{k}": v for k, v in ports["inputs"].items()},
                                        **{f"o_{k}": v for k, v in ports["outputs"].items()})
        return m
