"""The one configuration that drives the PyTorch model, the integer golden model and the RTL.

`ModelConfig` fixes every shape and every bit width of the network; `HardwareConfig` holds the
knobs that change how the hardware computes (lanes, pipelining) but never *what* it computes.
Both are frozen dataclasses, validated at construction (the error names the field, the value
and the allowed range), with a JSON round trip and a stable hash. The model config's hash is
stored in every artifact and echoed by the hardware, so a mismatch is refused, not misread.

This module imports nothing heavier than the standard library: the hardware generator and the
golden model use it without PyTorch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "ModelConfig",
    "HardwareConfig",
    "PRESETS",
    "HW_PRESETS",
    "STF_MODES",
    "ATTENTION_MODES",
    "READOUT_MODES",
    "load_config",
]

STF_MODES = ("off", "tspe", "tf", "both")
ATTENTION_MODES = ("v1",)
READOUT_MODES = ("pool", "token")


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent; the message names the field."""


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


class _JSONMixin:
    """JSON round trip and a hash that does not depend on field order or Python version."""

    # Fields added after artifacts were shipped: written only when they differ from their
    # default, so every config that existed before keeps its JSON and its hash (the hash is in
    # every artifact and echoed by the hardware).
    _OMIT_AT_DEFAULT: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name in self._OMIT_AT_DEFAULT and v == f.default:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}"
            )
        kw = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in d:
                v = d[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{cls.__name__} JSON is not valid: {e}") from None
        return cls.from_dict(d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def hash(self) -> str:
        """First 16 hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces)."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    @property
    def hash32(self) -> int:
        """The first 32 bits of `hash`, as the hardware echoes it."""
        return int(self.hash[:8], 16)


@dataclass(frozen=True)
class ModelConfig(_JSONMixin):
    """Shapes and bit widths of one spiking transformer (see docs/integer-semantics.md).

    Shapes: ``timesteps`` T, ``tokens`` N = (H/patch)*(W/patch), ``dim`` D, ``blocks`` L,
    ``hidden`` = mlp_ratio * D, ``classes`` C. Input images are ``image_shape`` = (H, W, channels)
    of unsigned ``pixel_bits``-bit integers.

    ``readout``: how the head reads the readout LIF's spikes S[t, n, d]. ``pool``: spike counts
    per channel summed over the tokens, head weights [D, C] (position-blind). ``token``: every
    token has its own head weights, [N*D, C] (row n*D + d), so the logits keep where a feature
    fired; N times the head weights, and the hardware visits the tokens one at a time.

    Integer widths (all signed two's complement unless noted):
      weight_bits     every weight matrix (2..8); the encoder's too.
      bias_bits       per-channel biases added before a LIF or after a requantization.
      threshold_bits  LIF thresholds (stored as unsigned values in [1, 2^(threshold_bits-1)-1]).
      pos_bits        entries of the (TSPE or ordinary) position table P.
      feedback_bits   temporal-feedback gains g[c].
      mult_bits       per-channel requantization multipliers M[c].
      requant_shift   the fixed right shift of every requantization (acc*M >> shift).
      residual_frac_bits  float meaning of the residual stream: 1.0 == 2^residual_frac_bits.
    """

    name: str = "custom"
    image_shape: tuple[int, int, int] = (8, 8, 1)
    pixel_bits: int = 5
    patch: int = 2
    timesteps: int = 4
    dim: int = 32
    blocks: int = 1
    heads: int = 1
    mlp_ratio: int = 2
    classes: int = 10
    weight_bits: int = 4
    bias_bits: int = 12
    threshold_bits: int = 12
    pos_bits: int = 10
    feedback_bits: int = 10
    mult_bits: int = 12
    requant_shift: int = 8
    residual_frac_bits: int = 6
    stf: str = "both"
    attention: str = "v1"
    readout: str = "pool"

    _OMIT_AT_DEFAULT = ("readout",)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        shape = self.image_shape
        if not (isinstance(shape, tuple) and len(shape) == 3):
            raise ConfigError(f"image_shape must be (height, width, channels), not {shape!r}")
        for label, v in zip(("height", "width", "channels"), shape):
            _check_int(f"image_shape {label}", v, 1, 1024)
        _check_int("pixel_bits", self.pixel_bits, 1, 16)
        _check_int("patch", self.patch, 1, 64)
        h, w, _ = shape
        if h % self.patch or w % self.patch:
            raise ConfigError(
                f"patch must divide the image height and width; {self.patch} does not divide {h}x{w}"
            )
        _check_int("timesteps", self.timesteps, 1, 64)
        _check_int("dim", self.dim, 1, 4096)
        _check_int("blocks", self.blocks, 0, 64)
        _check_int("heads", self.heads, 1, 256)
        if self.dim % self.heads:
            raise ConfigError(f"heads must divide dim; {self.heads} does not divide {self.dim}")
        _check_int("mlp_ratio", self.mlp_ratio, 1, 16)
        _check_int("classes", self.classes, 2, 65536)
        _check_int("weight_bits", self.weight_bits, 2, 8)
        _check_int("bias_bits", self.bias_bits, 2, 24)
        _check_int("threshold_bits", self.threshold_bits, 2, 24)
        _check_int("pos_bits", self.pos_bits, 2, 24)
        _check_int("feedback_bits", self.feedback_bits, 2, 24)
        _check_int("mult_bits", self.mult_bits, 2, 18)
        _check_int("requant_shift", self.requant_shift, 0, 30)
        _check_int("residual_frac_bits", self.residual_frac_bits, 0, 16)
        _check_choice("stf", self.stf, STF_MODES)
        _check_choice("attention", self.attention, ATTENTION_MODES)
        _check_choice("readout", self.readout, READOUT_MODES)
        from quant.contract import widths  # imported here: quant.contract imports this module

        largest = widths(self).largest_intermediate
        if largest >= 1 << 62:
            raise ConfigError(
                f"this config's integers grow to {largest.bit_length()} bits, more than the 62 the golden "
                "model's int64 arithmetic allows; reduce pixel_bits, patch, dim, mlp_ratio, tokens or the "
                "bias/mult widths, or raise requant_shift"
            )

    # Derived shapes -------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        return self.image_shape[0] // self.patch, self.image_shape[1] // self.patch

    @property
    def tokens(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def patch_dim(self) -> int:
        return self.patch * self.patch * self.image_shape[2]

    @property
    def hidden(self) -> int:
        return self.mlp_ratio * self.dim

    @property
    def head_inputs(self) -> int:
        """Rows of the head weight matrix: D (readout ``pool``) or N*D (``token``)."""
        return self.tokens * self.dim if self.readout == "token" else self.dim

    @property
    def pixel_max(self) -> int:
        return (1 << self.pixel_bits) - 1

    @property
    def tspe(self) -> bool:
        """Whether the position table differs per timestep (TSPE) or is shared over t."""
        return self.stf in ("tspe", "both")

    @property
    def feedback(self) -> bool:
        return self.stf in ("tf", "both")

    def with_stf(self, mode: str) -> "ModelConfig":
        return self.replace(stf=mode)


@dataclass(frozen=True)
class HardwareConfig(_JSONMixin):
    """How the hardware computes; never what. See docs/hardware.md.

    lanes            output channels computed per cycle by the spike-driven linear unit.
    token_lanes      tokens processed in parallel (a weight row read once serves them all).
    event_driven     skip zero input spikes (cycles scale with spike count) or scan densely.
    tree_register_every  pipeline register every k adder-tree levels (0: purely combinational).
    clock_mhz        target core clock (a PLL makes it from the board oscillator).
    weights          "baked" (from the artifact, in the bitstream) or "loadable" (write port).
    input_banks      weight memory banks of the spike-driven linear unit, a power of two: inputs
                     visited per cycle (row r in bank r mod input_banks).
    multipliers      "dsp": products in MULT18X18D blocks; "lut": shift-add in logic, split over
                     the same pipeline stages (hw.multiplier; no MULT18 path, more LUT4).
    """

    # added after hardware configs were recorded in reports: absent means one bank
    _OMIT_AT_DEFAULT = ("input_banks", "multipliers")

    lanes: int = 32
    token_lanes: int = 16
    event_driven: bool = True
    tree_register_every: int = 2
    clock_mhz: float = 100.0
    weights: str = "baked"
    input_banks: int = 1
    multipliers: str = "dsp"

    def __post_init__(self):
        _check_int("lanes", self.lanes, 1, 1024)
        _check_int("token_lanes", self.token_lanes, 1, 1024)
        if not isinstance(self.event_driven, bool):
            raise ConfigError(f"event_driven must be true or false, not {self.event_driven!r}")
        _check_int("tree_register_every", self.tree_register_every, 0, 16)
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)):
            raise ConfigError(f"clock_mhz must be a number in (0, 500], not {self.clock_mhz!r}")
        if not 0 < self.clock_mhz <= 500:
            raise ConfigError(f"clock_mhz must be in (0, 500], got {self.clock_mhz}")
        # Equal configs must hash equally: 100 and 100.0 compare equal but serialise differently.
        object.__setattr__(self, "clock_mhz", float(self.clock_mhz))
        _check_choice("weights", self.weights, ("baked", "loadable"))
        _check_int("input_banks", self.input_banks, 1, 16)
        _check_choice("multipliers", self.multipliers, ("dsp", "lut"))
        if self.input_banks & (self.input_banks - 1):
            raise ConfigError(f"input_banks must be a power of two (1, 2, 4, 8 or 16), got {self.input_banks}")


PRESETS: dict[str, ModelConfig] = {
    # sklearn digits: 8x8 pixels of 0..16 (5 bits), 2x2 patches -> 16 tokens of 4 pixels.
    "digits-tiny": ModelConfig(
        name="digits-tiny", image_shape=(8, 8, 1), pixel_bits=5, patch=2, timesteps=4,
        dim=32, blocks=1, heads=1, mlp_ratio=2, classes=10,
    ),
    # Fashion-MNIST: 28x28 of 0..255, 4x4 patches -> 49 tokens of 16 pixels. The per-token
    # readout: pooled over tokens, 64 spike counts were too few features (docs/training.md).
    "fmnist-small": ModelConfig(
        name="fmnist-small", image_shape=(28, 28, 1), pixel_bits=8, patch=4, timesteps=4,
        dim=64, blocks=2, heads=1, mlp_ratio=2, classes=10, bias_bits=14, threshold_bits=14,
        pos_bits=12, feedback_bits=12, readout="token",
    ),
}

HW_PRESETS: dict[str, HardwareConfig] = {
    "default": HardwareConfig(input_banks=2),
    "small": HardwareConfig(lanes=8, token_lanes=4),
}


def load_config(spec: str | Path) -> ModelConfig:
    """A preset name or the path of a JSON file holding a ModelConfig."""
    s = str(spec)
    if s in PRESETS:
        return PRESETS[s]
    p = Path(s)
    if p.suffix == ".json" or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; presets are {', '.join(PRESETS)}")
        return ModelConfig.from_json(p.read_text())
    raise ConfigError(f"unknown config {s!r}: use a preset ({', '.join(PRESETS)}) or a .json file")
