"""The versioned weight artifact: one file holding a quantized network and its config.

Format (version 1): a numpy ``.npz`` (a zip of ``.npy`` arrays, read with
``allow_pickle=False``) with

* one int32 array per parameter, named as in `param_spec` (for example ``b0.q.weight``);
* ``__meta__``: a uint8 array holding UTF-8 JSON: ``format`` ("stf-fpga-artifact"),
  ``version`` (1), ``config`` (the ModelConfig as a dict), ``config_hash``, ``checksum``
  (SHA-256 over every parameter's name, shape and little-endian int32 bytes, in sorted name
  order) and ``info`` (free-form provenance: training run, accuracies).

Every way a file can be wrong (missing, truncated, not a zip, bad checksum, other version,
missing or extra array, wrong shape, value out of the config's range) raises `ArtifactError`
naming the file and the problem. Writes go to a temporary file in the same folder and are
renamed into place, so a crash never leaves half a file; an existing file is only replaced
when the caller says ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.config import ConfigError, ModelConfig
from quant.contract import signed_range

__all__ = [
    "FORMAT",
    "VERSION",
    "ArtifactError",
    "Artifact",
    "param_spec",
    "load_artifact",
    "save_artifact",
    "random_artifact",
    "atomic_write_bytes",
    "SHIPPED_ARTIFACT",
]

# The trained digits-tiny artifact in the repository: the default of the main job, the benches,
# the host tool's simulated board and the RTL benches.
SHIPPED_ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "digits-tiny.npz"

FORMAT = "stf-fpga-artifact"
VERSION = 1


class ArtifactError(Exception):
    """An artifact file cannot be used; the message names the file and what is wrong."""


def param_spec(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], int, int]]:
    """Every parameter array of a network: name -> (shape, min value, max value)."""
    T, N, D, H, C, K = cfg.timesteps, cfg.tokens, cfg.dim, cfg.hidden, cfg.classes, cfg.patch_dim
    w = signed_range(cfg.weight_bits)
    b = signed_range(cfg.bias_bits)
    th = (1, (1 << (cfg.threshold_bits - 1)) - 1)
    m = signed_range(cfg.mult_bits)
    spec: dict[str, tuple[tuple[int, ...], int, int]] = {
        "enc.weight": ((K, D), *w),
        "enc.mult": ((D,), *m),
        "enc.bias": ((D,), *b),
        "enc.pos": ((T, N, D), *signed_range(cfg.pos_bits)),
        "enc.gain": ((D,), *signed_range(cfg.feedback_bits)),
        "enc.theta": ((D,), *th),
    }
    for l in range(cfg.blocks):
        p = f"b{l}."
        if l > 0:
            spec[p + "in.theta"] = ((D,), *th)
        for name in ("q", "k", "v"):
            spec[p + name + ".weight"] = ((D, D), *w)
            spec[p + name + ".bias"] = ((D,), *b)
            spec[p + name + ".theta"] = ((D,), *th)
        spec[p + "kv.theta"] = ((D,), *th)
        spec[p + "o.weight"] = ((D, D), *w)
        spec[p + "o.mult"] = ((D,), *m)
        spec[p + "o.bias"] = ((D,), *b)
        spec[p + "mlp_in.theta"] = ((D,), *th)
        spec[p + "fc1.weight"] = ((D, H), *w)
        spec[p + "fc1.bias"] = ((H,), *b)
        spec[p + "fc1.theta"] = ((H,), *th)
        spec[p + "fc2.weight"] = ((H, D), *w)
        spec[p + "fc2.mult"] = ((D,), *m)
        spec[p + "fc2.bias"] = ((D,), *b)
    spec["head.theta"] = ((D,), *th)
    spec["head.weight"] = ((cfg.head_inputs, C), *w)
    spec["head.bias"] = ((C,), *b)
    return spec


def _checksum(params: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(params[name], dtype="<i4")
        h.update(name.encode() + b"\0" + repr(a.shape).encode() + b"\0" + a.tobytes())
    return h.hexdigest()


@dataclass
class Artifact:
    """A quantized network: its config, its integer parameters and provenance info."""

    config: ModelConfig
    params: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.params = {k: np.asarray(v) for k, v in self.params.items()}
        self.validate()

    def validate(self, source: str = "artifact") -> None:
        """Check names, shapes, integer dtype, value ranges and the STF-mode constraints."""
        cfg = self.config
        spec = param_spec(cfg)
        missing = sorted(set(spec) - set(self.params))
        extra = sorted(set(self.params) - set(spec))
        if missing:
            raise ArtifactError(f"{source}: missing parameter(s) {', '.join(missing)} for config {cfg.name}")
        if extra:
            raise ArtifactError(f"{source}: unexpected parameter(s) {', '.join(extra)} for config {cfg.name}")
        for name, (shape, lo, hi) in spec.items():
            a = self.params[name]
            if a.shape != shape:
                raise ArtifactError(f"{source}: {name} has shape {a.shape}, config {cfg.name} needs {shape}")
            if not np.issubdtype(a.dtype, np.integer):
                raise ArtifactError(f"{source}: {name} has dtype {a.dtype}, an integer type is required")
            if a.size and (a.min() < lo or a.max() > hi):
                raise ArtifactError(
                    f"{source}: {name} has values in [{a.min()}, {a.max()}], outside [{lo}, {hi}] "
                    f"allowed by the config's bit widths"
                )
            self.params[name] = a.astype(np.int32)
        pos = self.params["enc.pos"]
        if not cfg.tspe and not np.all(pos == pos[:1]):
            raise ArtifactError(
                f"{source}: stf={cfg.stf} has no TSPE, so enc.pos must be equal at every timestep"
            )
        if not cfg.feedback and np.any(self.params["enc.gain"] != 0):
            raise ArtifactError(f"{source}: stf={cfg.stf} has no temporal feedback, so enc.gain must be 0")

    @property
    def checksum(self) -> str:
        return _checksum(self.params)

    def to_bytes(self) -> bytes:
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "config_hash": self.config.hash,
            "checksum": self.checksum,
            "info": self.info,
        }
        arrays = {k: v.astype("<i4") for k, v in self.params.items()}
        arrays["__meta__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write `data` to `path` through a temp file + rename; refuse to replace unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --force (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_artifact(artifact: Artifact, path: str | Path, overwrite: bool = False) -> Path:
    artifact.validate(str(path))
    return atomic_write_bytes(path, artifact.to_bytes(), overwrite=overwrite)


def load_artifact(path: str | Path) -> Artifact:
    """Read and fully validate an artifact; every failure is an `ArtifactError`."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise ArtifactError(f"{src}: no such artifact file (train and export one: python -m quant.export)")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zip, zlib, .npy header and pickle refusals all mean "not an artifact"
        raise ArtifactError(f"{src}: not a readable artifact (truncated or not an .npz file): {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ArtifactError(f"{src}: not a readable artifact (a single .npy array, not an .npz archive)")
    try:
        with z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # corrupt members surface only when read (zlib.error, bad CRC, bad header)
        raise ArtifactError(f"{src}: not a readable artifact (truncated or corrupt member): {e}") from None
    if "__meta__" not in arrays:
        raise ArtifactError(f"{src}: no __meta__ record; this is not an STF-FPGA artifact")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{src}: the __meta__ record is corrupt: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{src}: format is {meta.get('format') if isinstance(meta, dict) else meta!r}, expected {FORMAT}")
    if meta.get("version") != VERSION:
        raise ArtifactError(
            f"{src}: artifact format version {meta.get('version')!r}; this STF-FPGA reads version {VERSION} "
            "(re-export it with this version: python -m quant.export)"
        )
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (ConfigError, KeyError, TypeError) as e:
        raise ArtifactError(f"{src}: the stored config is invalid: {e}") from None
    if meta.get("config_hash") != cfg.hash:
        raise ArtifactError(f"{src}: config hash {meta.get('config_hash')} does not match the stored config ({cfg.hash})")
    for k, a in arrays.items():
        if not np.issubdtype(a.dtype, np.integer):
            raise ArtifactError(f"{src}: {k} has dtype {a.dtype}, an integer type is required")
    got = _checksum(arrays)
    if meta.get("checksum") != got:
        raise ArtifactError(f"{src}: checksum mismatch (stored {meta.get('checksum')}, computed {got}); the file is corrupt")
    try:
        return Artifact(cfg, arrays, meta.get("info", {}))
    except ArtifactError as e:
        raise ArtifactError(str(e).replace("artifact:", f"{src}:", 1)) from None


def random_artifact(cfg: ModelConfig, seed: int = 0, extreme: str | None = None) -> Artifact:
    """A valid random artifact for any config (for tests).

    ``extreme``: None for values in a typical working range (so spikes are neither all on nor
    all off), ``"max"`` to put every weight/bias/gain/position/multiplier at the config's
    largest value and thresholds at the largest, ``"min"`` for the most negative values and
    thresholds of 1.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for name, (shape, lo, hi) in param_spec(cfg).items():
        if extreme == "max":
            a = np.full(shape, hi)
        elif extreme == "min":
            a = np.full(shape, lo)
        else:
            kind = name.rsplit(".", 1)[1]
            if kind == "weight":
                a = rng.integers(lo, hi + 1, shape)
            elif kind == "theta":
                a = rng.integers(1, min(hi, _typical_theta(cfg, name)) + 1, shape)
            elif kind == "mult":
                a = rng.integers(max(lo, -(hi // 2)), hi // 2 + 1, shape)
            else:
                span = max(1, (hi + 1) // 8)
                a = rng.integers(-span, span + 1, shape)
        params[name] = a
    if not cfg.tspe:
        params["enc.pos"] = np.broadcast_to(params["enc.pos"][:1], params["enc.pos"].shape).copy()
    if not cfg.feedback:
        params["enc.gain"] = np.zeros_like(params["enc.gain"])
    return Artifact(cfg, params, {"source": f"random_artifact(seed={seed}, extreme={extreme})"})


def _typical_theta(cfg: ModelConfig, name: str) -> int:
    """A threshold scale at which random layers fire at a moderate rate."""
    wmax = 1 << (cfg.weight_bits - 1)
    if name.endswith("kv.theta"):
        return max(1, cfg.tokens // 4)
    if ".fc1." in name or ".q." in name or ".k." in name or ".v." in name:
        return max(2, int(wmax * np.sqrt(cfg.dim)))
    # thresholds on the residual stream
    return max(2, (1 << (cfg.bias_bits - 1)) // 4)
