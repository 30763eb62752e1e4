"""ModelConfig / HardwareConfig: validation names the field, JSON round trip, stable hash, loading."""

from __future__ import annotations

import dataclasses
import json

import pytest

from model.config import (
    ATTENTION_MODES, READOUT_MODES,
    HW_PRESETS,
    PRESETS,
    STF_MODES,
    ConfigError,
    HardwareConfig,
    ModelConfig,
    load_config,
)

# Pinned: the digits-tiny hash is stored in every shipped artifact and echoed by the hardware, so
# a change here means every artifact and bitstream made so far is refused. Change it only on purpose.
DIGITS_TINY_HASH = "966fb61c981adcbe"

# (field, bad value, text the message must contain besides the field name)
MODEL_BAD = [
    ("name", "", "non-empty"),
    ("name", 3, "non-empty"),
    ("image_shape", (8, 8), "(height, width, channels)"),
    ("image_shape", [8, 8, 1], "(height, width, channels)"),
    ("image_shape", (0, 8, 1), "[1, 1024]"),
    ("image_shape", (8, 8.0, 1), "integer"),
    ("image_shape", (8, 8, 2000), "[1, 1024]"),
    ("pixel_bits", 0, "[1, 16]"),
    ("pixel_bits", 17, "[1, 16]"),
    ("pixel_bits", 5.0, "integer"),
    ("pixel_bits", True, "integer"),
    ("patch", 0, "[1, 64]"),
    ("patch", 3, "does not divide 8x8"),
    ("patch", "2", "integer"),
    ("timesteps", 0, "[1, 64]"),
    ("timesteps", 65, "[1, 64]"),
    ("dim", 0, "[1, 4096]"),
    ("dim", None, "integer"),
    ("blocks", -1, "[0, 64]"),
    ("heads", 0, "[1, 256]"),
    ("heads", 5, "does not divide 32"),
    ("mlp_ratio", 0, "[1, 16]"),
    ("classes", 1, "[2, 65536]"),
    ("weight_bits", 1, "[2, 8]"),
    ("weight_bits", 9, "[2, 8]"),
    ("bias_bits", 25, "[2, 24]"),
    ("threshold_bits", 1, "[2, 24]"),
    ("pos_bits", 1, "[2, 24]"),
    ("feedback_bits", 25, "[2, 24]"),
    ("mult_bits", 19, "[2, 18]"),
    ("requant_shift", -1, "[0, 30]"),
    ("requant_shift", 31, "[0, 30]"),
    ("residual_frac_bits", 17, "[0, 16]"),
    ("stf", "on", "off, tspe, tf, both"),
    ("stf", None, "off, tspe, tf, both"),
    ("attention", "v2", ", ".join(ATTENTION_MODES)),
    ("readout", "mean", ", ".join(READOUT_MODES)),
]


@pytest.mark.parametrize("field,value,text", MODEL_BAD, ids=[f"{f}={v!r}" for f, v, _ in MODEL_BAD])
def test_model_config_errors_name_the_field(field, value, text):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**{field: value})
    msg = str(e.value)
    assert field in msg, msg
    assert text in msg, msg


def test_every_model_field_is_validated():
    # Guards against a new field that nobody checks: each one must appear in MODEL_BAD.
    assert {f.name for f in dataclasses.fields(ModelConfig)} == {f for f, _, _ in MODEL_BAD}


def test_model_config_accepts_the_range_edges():
    ModelConfig(weight_bits=2, requant_shift=0, blocks=0, pixel_bits=1, residual_frac_bits=0)
    ModelConfig(weight_bits=8, mult_bits=18, bias_bits=24, threshold_bits=24, requant_shift=30)
    ModelConfig(image_shape=(6, 10, 3), patch=2, dim=12, heads=12)
    for mode in STF_MODES:
        assert ModelConfig(stf=mode).stf == mode


def test_derived_shapes():
    c = PRESETS["digits-tiny"]
    assert (c.grid, c.tokens, c.patch_dim, c.hidden, c.pixel_max) == ((4, 4), 16, 4, 64, 31)
    f = PRESETS["fmnist-small"]
    assert (f.grid, f.tokens, f.patch_dim, f.hidden, f.pixel_max) == ((7, 7), 49, 16, 128, 255)
    assert ModelConfig(image_shape=(4, 6, 3), patch=2).patch_dim == 12
    assert [(ModelConfig(stf=m).tspe, ModelConfig(stf=m).feedback) for m in STF_MODES] == [
        (False, False), (True, False), (False, True), (True, True)
    ]
    assert c.with_stf("off").stf == "off" and c.with_stf("off").dim == c.dim


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    c = PRESETS[name]
    text = c.to_json()
    back = ModelConfig.from_json(text)
    assert back == c
    assert back.hash == c.hash
    assert isinstance(back.image_shape, tuple)
    assert json.loads(text)["image_shape"] == list(c.image_shape)
    assert ModelConfig.from_dict(c.to_dict()) == c


def test_from_dict_rejects_unknown_fields_and_names_them():
    d = PRESETS["digits-tiny"].to_dict()
    d["lanes"] = 8
    d["dimm"] = 3
    with pytest.raises(ConfigError, match=r"unknown ModelConfig field\(s\) dimm, lanes"):
        ModelConfig.from_dict(d)


def test_from_dict_missing_fields_take_defaults():
    assert ModelConfig.from_dict({"dim": 16}) == ModelConfig(dim=16)


def test_from_json_errors():
    with pytest.raises(ConfigError, match="not valid"):
        ModelConfig.from_json("{dim: 3")
    with pytest.raises(ConfigError, match="must be a JSON object, not list"):
        ModelConfig.from_json("[1, 2]")
    with pytest.raises(ConfigError, match="dim"):
        ModelConfig.from_json('{"dim": -4}')


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["digits-tiny"].dim = 3  # type: ignore[misc]


def test_hash_is_pinned_and_format():
    c = PRESETS["digits-tiny"]
    assert c.hash == DIGITS_TINY_HASH
    assert c.hash32 == int(DIGITS_TINY_HASH[:8], 16)
    assert ModelConfig.from_json(c.to_json(indent=None)).hash == DIGITS_TINY_HASH


# One changed value per field; each must change the hash.
_CHANGED = {
    "name": "other", "image_shape": (8, 8, 2), "pixel_bits": 6, "patch": 4, "timesteps": 5, "dim": 16,
    "blocks": 2, "heads": 2, "mlp_ratio": 3, "classes": 11, "weight_bits": 3, "bias_bits": 13,
    "threshold_bits": 13, "pos_bits": 11, "feedback_bits": 11, "mult_bits": 13, "requant_shift": 9,
    "residual_frac_bits": 7, "stf": "tf", "attention": None, "readout": "token",
}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ModelConfig)])
def test_hash_changes_with_every_field(field):
    base = PRESETS["digits-tiny"]
    if field == "attention":
        if len(ATTENTION_MODES) < 2:
            pytest.skip("only one attention mode exists")
        value = next(m for m in ATTENTION_MODES if m != base.attention)
    else:
        value = _CHANGED[field]
    changed = base.replace(**{field: value})
    assert changed != base
    assert changed.hash != base.hash


def test_hash_independent_of_key_order():
    c = PRESETS["fmnist-small"]
    d = c.to_dict()
    reordered = dict(reversed(list(d.items())))
    assert ModelConfig.from_dict(reordered).hash == c.hash


def test_load_config_preset_file_and_errors(tmp_path):
    assert load_config("digits-tiny") is PRESETS["digits-tiny"]
    p = tmp_path / "c.json"
    want = ModelConfig(name="mine", dim=16, stf="tspe")
    p.write_text(want.to_json())
    assert load_config(p) == want
    assert load_config(str(p)) == want

    with pytest.raises(ConfigError, match=r"unknown config 'digits-huge'.*digits-tiny.*\.json"):
        load_config("digits-huge")
    with pytest.raises(ConfigError, match=r"config file .*missing\.json does not exist"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"dim": 0}')
    with pytest.raises(ConfigError, match=r"dim must be in \[1, 4096\], got 0"):
        load_config(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid"):
        load_config(broken)


# HardwareConfig ------------------------------------------------------------------------------

HW_BAD = [
    ("lanes", 0, "[1, 1024]"),
    ("lanes", 8.0, "integer"),
    ("lanes", True, "integer"),
    ("token_lanes", 1025, "[1, 1024]"),
    ("event_driven", 1, "true or false"),
    ("event_driven", "yes", "true or false"),
    ("tree_register_every", -1, "[0, 16]"),
    ("tree_register_every", 17, "[0, 16]"),
    ("clock_mhz", 0, "(0, 500]"),
    ("clock_mhz", 501.0, "(0, 500]"),
    ("clock_mhz", "100", "number"),
    ("clock_mhz", True, "number"),
    ("weights", "flash", "baked, loadable"),
    ("input_banks", 0, "[1, 16]"),
    ("multipliers", "mult18", "multipliers must be one of"),
    ("input_banks", 3, "power of two"),
    ("input_banks", 2.0, "integer"),
]


@pytest.mark.parametrize("field,value,text", HW_BAD, ids=[f"{f}={v!r}" for f, v, _ in HW_BAD])
def test_hardware_config_errors_name_the_field(field, value, text):
    with pytest.raises(ConfigError) as e:
        HardwareConfig(**{field: value})
    assert field in str(e.value) and text in str(e.value), str(e.value)


def test_every_hardware_field_is_validated():
    assert {f.name for f in dataclasses.fields(HardwareConfig)} == {f for f, _, _ in HW_BAD}


@pytest.mark.parametrize("name", sorted(HW_PRESETS))
def test_hardware_json_round_trip_and_hash(name):
    h = HW_PRESETS[name]
    back = HardwareConfig.from_json(h.to_json())
    assert back == h and back.hash == h.hash
    assert h.replace(lanes=h.lanes + 1).hash != h.hash
    assert h.replace(event_driven=not h.event_driven).hash != h.hash
    with pytest.raises(ConfigError, match=r"unknown HardwareConfig field\(s\) dim"):
        HardwareConfig.from_dict({**h.to_dict(), "dim": 3})


def test_model_and_hardware_dicts_are_not_interchangeable():
    # A ModelConfig dict is not a HardwareConfig and vice versa: no silent cross-loading.
    with pytest.raises(ConfigError, match="unknown HardwareConfig"):
        HardwareConfig.from_dict(PRESETS["digits-tiny"].to_dict())
    with pytest.raises(ConfigError, match="unknown ModelConfig"):
        ModelConfig.from_dict(HardwareConfig().to_dict())


def test_one_bank_is_left_out_of_the_json():
    """input_banks came after hardware configs were recorded in build reports: a config without
    it is one bank, and a one-bank config writes the JSON (and hash) it had before."""
    small = HW_PRESETS["small"]
    assert small.input_banks == 1 and "input_banks" not in small.to_dict()
    assert HardwareConfig.from_dict(small.to_dict()) == small
    assert HW_PRESETS["default"].to_dict()["input_banks"] == 2


def test_dsp_multipliers_are_left_out_of_the_json():
    """multipliers came after hardware configs were recorded: "dsp" (what every earlier build
    used) keeps the JSON and hash it had, "lut" is written and changes the hash."""
    h = HW_PRESETS["default"]
    assert h.multipliers == "dsp" and "multipliers" not in h.to_dict()
    lut = h.replace(multipliers="lut")
    assert lut.to_dict()["multipliers"] == "lut" and lut.hash != h.hash
    assert HardwareConfig.from_json(lut.to_json()) == lut


def test_equal_hardware_configs_have_equal_hashes():
    a, b = HardwareConfig(clock_mhz=100), HardwareConfig(clock_mhz=100.0)
    assert a == b
    assert a.hash == b.hash


@pytest.mark.parametrize("module", ["model.config", "quant.contract", "quant.artifact", "quant.golden", "model.data"])
def test_core_modules_import_first_in_a_fresh_interpreter(module):
    # Import order must not matter: hw/ and sim/ code may import quant.contract before model.config.
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1]


def test_readout_field_keeps_the_hash_of_earlier_configs():
    # readout was added after artifacts shipped: at its default it is left out of the JSON, so
    # the shipped digits artifact's recorded hash still matches its preset.
    from pathlib import Path

    d = PRESETS["digits-tiny"]
    assert "readout" not in d.to_dict()
    recorded = json.loads((Path(__file__).parent.parent / "artifacts" / "digits-tiny.json").read_text())
    assert recorded["config_hash"] == d.hash
    tok = d.replace(readout="token")
    assert tok.to_dict()["readout"] == "token" and tok.hash != d.hash
    assert ModelConfig.from_json(tok.to_json()) == tok
    assert ModelConfig.from_json(d.to_json()).readout == "pool"
