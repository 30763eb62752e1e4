"""The artifact file: round trip, atomic writes, and one clear ArtifactError per way a file is wrong."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import zipfile

import numpy as np
import pytest

import quant.artifact as qa
from model.config import PRESETS, ModelConfig
from quant.artifact import (
    FORMAT,
    VERSION,
    Artifact,
    ArtifactError,
    atomic_write_bytes,
    load_artifact,
    param_spec,
    random_artifact,
    save_artifact,
)

CFG = PRESETS["digits-tiny"]


def spec_checksum(params: dict[str, np.ndarray]) -> str:
    """The checksum exactly as quant/artifact.py's docstring words it (an independent re-derivation)."""
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(params[name], dtype="<i4")
        h.update(name.encode() + b"\0" + repr(a.shape).encode() + b"\0" + a.tobytes())
    return h.hexdigest()


def read_raw(path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return arrays, meta


def write_raw(path, arrays: dict[str, np.ndarray], meta: dict | None, fix_checksum: bool = False) -> None:
    """Write an npz the way an attacker or a buggy exporter might; optionally re-sign the checksum."""
    arrays = dict(arrays)
    if meta is not None:
        meta = dict(meta)
        if fix_checksum:
            meta["checksum"] = spec_checksum(arrays)
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.fixture
def saved(tmp_path):
    art = random_artifact(CFG, seed=3)
    art.info = {"run": "unit-test", "acc": 0.5}
    path = tmp_path / "a.npz"
    save_artifact(art, path)
    return art, path


def expect_error(path, *fragments):
    with pytest.raises(ArtifactError) as e:
        load_artifact(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


# Round trip and writes -------------------------------------------------------------------------


def test_round_trip(saved):
    art, path = saved
    back = load_artifact(path)
    assert back.config == art.config
    assert back.info == {"run": "unit-test", "acc": 0.5}
    assert sorted(back.params) == sorted(param_spec(CFG))
    for k, v in art.params.items():
        assert back.params[k].dtype == np.int32
        assert back.params[k].tobytes() == v.astype(np.int32).tobytes(), k
    assert back.checksum == art.checksum == spec_checksum(art.params)
    _, meta = read_raw(path)
    assert meta["format"] == FORMAT and meta["version"] == VERSION == 1
    assert meta["config"] == CFG.to_dict() and meta["config_hash"] == CFG.hash
    assert meta["checksum"] == art.checksum


def test_to_bytes_is_deterministic():
    a = random_artifact(CFG, seed=5)
    assert load_artifact_bytes(a.to_bytes()).checksum == a.checksum
    assert random_artifact(CFG, seed=5).checksum == a.checksum
    assert random_artifact(CFG, seed=6).checksum != a.checksum


def load_artifact_bytes(data: bytes) -> Artifact:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.npz"
        p.write_bytes(data)
        return load_artifact(p)


@pytest.mark.parametrize("stf", ["off", "tspe", "tf", "both"])
def test_round_trip_every_stf_mode(tmp_path, stf):
    cfg = PRESETS["digits-tiny"].with_stf(stf)
    art = random_artifact(cfg, seed=1)
    save_artifact(art, tmp_path / "a.npz")
    assert load_artifact(tmp_path / "a.npz").checksum == art.checksum


def test_atomic_write_refuses_overwrite(saved, tmp_path):
    art, path = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists; pass --force"):
        save_artifact(random_artifact(CFG, seed=9), path)
    assert path.read_bytes() == before
    save_artifact(random_artifact(CFG, seed=9), path, overwrite=True)
    assert load_artifact(path).checksum == random_artifact(CFG, seed=9).checksum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]  # no temp file left behind


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def boom(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(qa.os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, b"data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_creates_parent(tmp_path):
    p = atomic_write_bytes(tmp_path / "x" / "y" / "z.bin", b"abc")
    assert p.read_bytes() == b"abc"


def test_save_validates_first(tmp_path):
    art = random_artifact(CFG, seed=0)
    art.params["enc.theta"] = np.zeros(CFG.dim, np.int32)  # bypasses __post_init__
    with pytest.raises(ArtifactError, match=r"out\.npz: enc\.theta has values in \[0, 0\], outside \[1, "):
        save_artifact(art, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


# Files that are broken as files ---------------------------------------------------------------


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such artifact file", "python -m quant.export")


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("this is not an artifact\n" * 10)
    expect_error(p, "not a readable artifact")


def test_plain_npy_is_not_an_artifact(tmp_path):
    p = tmp_path / "plain.npz"
    np.save(p.open("wb"), np.arange(4))
    expect_error(p)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, -1])
def test_truncated(saved, fraction):
    _, path = saved
    raw = path.read_bytes()
    cut = len(raw) - 1 if fraction == -1 else int(len(raw) * fraction)
    path.write_bytes(raw[:cut])
    expect_error(path, "not a readable artifact")


def _flip_outcomes(path, raw, seed, trials):
    """Flip 1-4 bytes in the middle 80 % of the file; every load must fail cleanly or be unchanged."""
    rng = random.Random(seed)
    reference = {k: v.copy() for k, v in load_artifact(path).params.items()}
    bad = []
    for i in range(trials):
        b = bytearray(raw)
        pos = rng.randrange(len(b) // 10, len(b) * 9 // 10)
        for k in range(rng.randint(1, 4)):
            b[pos + k] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(b))
        try:
            back = load_artifact(path)
        except ArtifactError as e:
            if str(path) not in str(e):
                bad.append((i, pos, "message lacks the file name", str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - that is what the test looks for
            bad.append((i, pos, type(e).__module__ + "." + type(e).__name__, str(e)[:80]))
            continue
        # A flip in a zip field nobody reads (time stamp, comment) is harmless: the content must be.
        if any(not np.array_equal(back.params[k], v) for k, v in reference.items()):
            bad.append((i, pos, "loaded with different values", ""))
    return bad


def test_random_byte_flips(saved):
    _, path = saved
    seed = 20261123
    print(f"seed={seed}")
    bad = _flip_outcomes(path, path.read_bytes(), seed, 200)
    assert not bad, f"{len(bad)} of 200 corrupted files not refused cleanly, e.g. {bad[:3]}"


def test_byte_flip_in_stored_meta_is_refused(saved, tmp_path):
    # Deterministic corruption that the zip CRC catches: rewrite the zip uncompressed, then flip
    # one byte inside the __meta__ member's data.
    _, path = saved
    arrays, meta = read_raw(path)
    buf = io.BytesIO()
    np.savez(buf, **arrays, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    raw = bytearray(buf.getvalue())
    at = raw.find(b'"checksum"')
    assert at > 0
    raw[at + 3] ^= 0x20
    path.write_bytes(bytes(raw))
    expect_error(path, "not a readable artifact")


# Well-formed zips with wrong content ----------------------------------------------------------


def test_no_meta(saved):
    _, path = saved
    arrays, _ = read_raw(path)
    write_raw(path, arrays, None)
    expect_error(path, "no __meta__ record")


def test_corrupt_meta_json(saved):
    _, path = saved
    arrays, _ = read_raw(path)
    arrays["__meta__"] = np.frombuffer(b'{"format": "stf-fpga-art', np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())
    expect_error(path, "__meta__ record is corrupt")


def test_wrong_version(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    write_raw(path, arrays, {**meta, "version": 2})
    expect_error(path, "format version 2", f"reads version {VERSION}", "re-export")


def test_missing_version(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    del meta["version"]
    write_raw(path, arrays, meta)
    expect_error(path, "format version None")


def test_wrong_format_string(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    write_raw(path, arrays, {**meta, "format": "someone-elses-weights"})
    expect_error(path, "format is 'someone-elses-weights'", f"expected {FORMAT}")


def test_meta_not_an_object(saved):
    _, path = saved
    arrays, _ = read_raw(path)
    arrays["__meta__"] = np.frombuffer(b"[1, 2]", np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())
    expect_error(path, "expected " + FORMAT)


def test_invalid_stored_config(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    write_raw(path, arrays, {**meta, "config": {**meta["config"], "dim": 0}})
    expect_error(path, "stored config is invalid", "dim")


def test_config_hash_mismatch(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    write_raw(path, arrays, {**meta, "config_hash": "0123456789abcdef"})
    expect_error(path, "config hash 0123456789abcdef does not match", CFG.hash)


def test_bad_checksum(saved):
    # Change one weight and rewrite the zip keeping the old meta: only the checksum can tell.
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["b0.q.weight"] = arrays["b0.q.weight"].copy()
    arrays["b0.q.weight"][0, 0] ^= 1
    write_raw(path, arrays, meta)
    expect_error(path, "checksum mismatch", "corrupt")


def test_missing_array(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    del arrays["b0.kv.theta"]
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "missing parameter(s) b0.kv.theta", CFG.name)


def test_missing_array_without_resigning_fails_checksum(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    del arrays["head.bias"]
    write_raw(path, arrays, meta)
    expect_error(path, "checksum mismatch")


def test_extra_array(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["b1.q.weight"] = np.zeros((CFG.dim, CFG.dim), np.int32)
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "unexpected parameter(s) b1.q.weight")


def test_wrong_shape(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["enc.weight"] = arrays["enc.weight"][:, :-1]
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, f"enc.weight has shape (4, {CFG.dim - 1})", f"needs (4, {CFG.dim})")


def test_transposed_shape(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["b0.fc1.weight"] = arrays["b0.fc1.weight"].T.copy()
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "b0.fc1.weight has shape")


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("b0.fc2.weight", 8, "[-8, 7]"),
        ("b0.fc2.weight", -9, "[-8, 7]"),
        ("enc.theta", 0, "[1, 2047]"),
        ("head.theta", 2048, "[1, 2047]"),
        ("enc.bias", 2048, "[-2048, 2047]"),
        ("enc.mult", -2049, "[-2048, 2047]"),
        ("enc.pos", 512, "[-512, 511]"),
        ("enc.gain", -513, "[-512, 511]"),
    ],
)
def test_out_of_range_value(saved, name, value, allowed):
    _, path = saved
    arrays, meta = read_raw(path)
    a = arrays[name].copy()
    a.flat[a.size // 2] = value
    arrays[name] = a
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, f"{name} has values in", f"outside {allowed}", "bit widths")


def test_non_integer_dtype(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["enc.bias"] = arrays["enc.bias"].astype(np.float32)
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "enc.bias has dtype float32", "integer type is required")


def test_bool_dtype_is_not_integer(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["enc.gain"] = np.zeros(CFG.dim, bool)
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "enc.gain has dtype bool")


def test_int64_values_beyond_int32_are_refused(saved):
    # The checksum casts to int32; a value that wraps must still be refused by the range check.
    _, path = saved
    arrays, meta = read_raw(path)
    a = arrays["b0.o.weight"].astype(np.int64)
    a[0, 0] = 1 << 32  # wraps to 0 in int32
    arrays["b0.o.weight"] = a
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, "b0.o.weight has values in")


@pytest.mark.parametrize("stf", ["off", "tf"])
def test_tspe_constraint(tmp_path, stf):
    cfg = CFG.with_stf(stf)
    path = tmp_path / "a.npz"
    save_artifact(random_artifact(cfg, seed=2), path)
    arrays, meta = read_raw(path)
    pos = arrays["enc.pos"].copy()
    pos[1, 0, 0] = pos[0, 0, 0] + 1 if pos[0, 0, 0] < 511 else pos[0, 0, 0] - 1
    arrays["enc.pos"] = pos
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, f"stf={stf} has no TSPE", "enc.pos must be equal at every timestep")


@pytest.mark.parametrize("stf", ["off", "tspe"])
def test_feedback_constraint(tmp_path, stf):
    cfg = CFG.with_stf(stf)
    path = tmp_path / "a.npz"
    save_artifact(random_artifact(cfg, seed=2), path)
    arrays, meta = read_raw(path)
    gain = arrays["enc.gain"].copy()
    gain[3] = -1
    arrays["enc.gain"] = gain
    write_raw(path, arrays, meta, fix_checksum=True)
    expect_error(path, f"stf={stf} has no temporal feedback", "enc.gain must be 0")


def test_stf_modes_allow_what_they_use():
    both = random_artifact(CFG.with_stf("both"), seed=4)
    assert np.any(both.params["enc.pos"][0] != both.params["enc.pos"][1])
    assert np.any(both.params["enc.gain"] != 0)
    off = random_artifact(CFG.with_stf("off"), seed=4)
    assert np.all(off.params["enc.pos"] == off.params["enc.pos"][:1])
    assert np.all(off.params["enc.gain"] == 0)


# Pickle safety ---------------------------------------------------------------------------------

UNPICKLED: list[str] = []


def _mark_unpickled(tag):
    UNPICKLED.append(tag)
    return tag


class _Canary:
    def __reduce__(self):
        return (_mark_unpickled, ("canary",))


def test_object_array_is_refused_not_unpickled(saved):
    _, path = saved
    arrays, meta = read_raw(path)
    arrays["enc.bias"] = np.array([_Canary()] * CFG.dim, dtype=object)
    write_raw(path, arrays, meta)
    UNPICKLED.clear()
    expect_error(path, "not a readable artifact")
    assert UNPICKLED == [], "load_artifact unpickled an object array"
    # Sanity: the file really holds a pickle that would run on allow_pickle=True.
    with np.load(path, allow_pickle=True) as z:
        z["enc.bias"]
    assert UNPICKLED and UNPICKLED[0] == "canary"
    UNPICKLED.clear()


def test_np_load_called_with_allow_pickle_false(saved, monkeypatch):
    _, path = saved
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(qa.np, "load", spy)
    load_artifact(path)
    assert calls and all(c.get("allow_pickle") is False for c in calls), calls


# The in-memory constructor validates too ----------------------------------------------------------


def test_constructor_validates():
    params = dict(random_artifact(CFG, seed=0).params)
    params["head.weight"] = params["head.weight"][:, :3]
    with pytest.raises(ArtifactError, match=r"^artifact: head\.weight has shape"):
        Artifact(CFG, params)


def test_param_spec_digits_tiny():
    spec = param_spec(CFG)
    assert spec["enc.weight"] == ((4, 32), -8, 7)
    assert spec["enc.pos"] == ((4, 16, 32), -512, 511)
    assert spec["enc.theta"] == ((32,), 1, 2047)
    assert spec["b0.fc1.weight"] == ((32, 64), -8, 7)
    assert spec["b0.fc2.weight"] == ((64, 32), -8, 7)
    assert spec["head.weight"] == ((32, 10), -8, 7)
    assert "b0.in.theta" not in spec  # block 0 reads the encoder's spikes
    two = param_spec(CFG.replace(blocks=2))
    assert "b1.in.theta" in two and len(two) == len(spec) + 21  # 20 per block + in.theta


@pytest.mark.parametrize("extreme", ["max", "min"])
def test_random_artifact_extremes_hit_the_spec_ends(extreme):
    for cfg in (CFG, PRESETS["fmnist-small"], CFG.replace(weight_bits=2, stf="off")):
        art = random_artifact(cfg, extreme=extreme)
        for name, (shape, lo, hi) in param_spec(cfg).items():
            a = art.params[name]
            if name == "enc.gain" and not cfg.feedback:
                assert np.all(a == 0)
                continue
            assert np.all(a == (hi if extreme == "max" else lo)), name


def test_atomic_write_gives_the_umask_mode_not_0600(tmp_path):
    # mkstemp makes 0600 files; a written artifact must be as readable as any file the user makes
    old = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "m.bin", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
