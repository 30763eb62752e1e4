"""Data sets as integer images: sklearn's digits (bundled) and IDX files (MNIST, Fashion-MNIST).

Every loader returns ``(images, labels)``: ``images`` uint8 [B, H, W] holding the raw integer
pixels the hardware receives (digits: 0..16, 5 bits; IDX: 0..255, 8 bits), ``labels`` int64 [B].

Digits split: stratified 80/20 with seed 0 (sklearn's ``train_test_split``), 1437 train and
360 test images; fixed so every accuracy in this project refers to the same 360 test images.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "load_dataset",
    "load_digits_split",
    "read_idx",
    "load_idx_split",
    "dataset_pixel_bits",
]

DATASETS = ("digits", "fashion-mnist", "mnist")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


class DataError(Exception):
    """A data set cannot be loaded; the message names the file or the choice and the fix."""


def dataset_pixel_bits(name: str) -> int:
    return 5 if name == "digits" else 8


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits, the project's fixed stratified 80/20 split (``split``: train or test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    d = load_digits()
    images = d.images.astype(np.uint8)  # values 0..16
    labels = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return (xtr, ytr) if split == "train" else (xte, yte)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed); errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IDX file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip data: {e}") from None
    if len(raw) < 4:
        raise DataError(f"{path}: file is {len(raw)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim == 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000TTNN with a known type TT); "
            "is this an IDX file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[dtype_code])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != need:
        raise DataError(
            f"{path}: truncated or oversized IDX data: header says shape {shape} ({need} bytes), "
            f"file has {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = data_dir / name
        if p.is_file():
            return p
    raise DataError(
        f"{data_dir}: no {stem} (or .gz) file. For Fashion-MNIST run scripts/get-fashion-mnist.sh "
        "(installs Debian's dataset-fashion-mnist into /usr/share/datasets/fashion-mnist) or pass --data-dir"
    )


def load_idx_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-layout IDX files in ``data_dir``: train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} does not exist. For Fashion-MNIST run scripts/get-fashion-mnist.sh "
            "or pass --data-dir with the IDX files"
        )
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    images = read_idx(_find(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{data_dir}: {prefix} images must be a uint8 array [B, H, W], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{data_dir}: {len(labels)} labels for {len(images)} images in the {split} split")
    return images.copy(), labels.astype(np.int64)


def load_dataset(name: str, split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``name``: digits, fashion-mnist or mnist; ``data_dir`` for the IDX data sets."""
    if name == "digits":
        return load_digits_split(split)
    if name == "fashion-mnist":
        return load_idx_split(data_dir or FASHION_MNIST_DIR, split)
    if name == "mnist":
        if data_dir is None:
            raise DataError("mnist needs --data-dir pointing at the MNIST IDX files")
        return load_idx_split(data_dir, split)
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
