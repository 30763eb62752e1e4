"""python -m quant.evaluate: numbers equal to the golden model's, and one-line errors."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from model.config import PRESETS
from model.data import load_digits_split
from quant import golden
from quant.artifact import random_artifact, save_artifact
from quant.evaluate import main

CFG = PRESETS["digits-tiny"]


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("ev") / "digits.npz"
    save_artifact(random_artifact(CFG, seed=4), p)
    return p


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_matches_the_golden_model(capsys, artifact_path):
    rc, out, err = run(capsys, "--artifact", artifact_path, "--dataset", "digits", "--split", "test",
                       "--json", "--limit", 50, "--batch", 7)
    assert rc == 0, err
    assert out.count("\n") == 1  # one JSON object on one line
    r = json.loads(out)
    x, y = load_digits_split("test")
    x, y = x[:50], y[:50]
    from quant.artifact import load_artifact

    art = load_artifact(artifact_path)
    rec = golden.forward(art, x)
    correct = rec["pred"] == y
    assert r["images"] == 50 and r["limit"] == 50
    assert r["correct"] == int(correct.sum())
    assert r["accuracy"] == pytest.approx(correct.mean())
    assert r["config"] == "digits-tiny" and r["config_hash"] == CFG.hash
    assert r["dataset"] == "digits" and r["split"] == "test"
    assert sorted(r["per_class"], key=int) == [str(c) for c in sorted(set(y.tolist()))]
    for c, v in r["per_class"].items():
        m = y == int(c)
        assert v["images"] == int(m.sum()) and v["correct"] == int(correct[m].sum())
    assert list(r["firing_rates"]) == sorted(golden.spike_layers(CFG))  # sort_keys
    for k in golden.spike_layers(CFG):
        assert r["firing_rates"][k] == pytest.approx(rec[k].mean(), abs=1e-12), k
        assert 0 < r["firing_rates"][k] < 1


def test_text_output(capsys, artifact_path):
    rc, out, err = run(capsys, "--artifact", artifact_path, "--dataset", "digits", "--split", "train", "--limit", 30)
    assert rc == 0, err
    assert "accuracy: " in out and "/30)" in out
    assert "| spiking layer" in out and "| b0.kv" in out and "| head" in out
    assert "| class" in out


def one_line_error(capsys, *argv, match):
    rc, out, err = run(capsys, *argv)
    assert rc == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("quant.evaluate: "), err
    assert match in err, err
    return err


def test_missing_artifact(capsys, tmp_path):
    one_line_error(capsys, "--artifact", tmp_path / "none.npz", match="none.npz: no such artifact file")


def test_corrupt_artifact(capsys, tmp_path, artifact_path):
    p = tmp_path / "cut.npz"
    p.write_bytes(artifact_path.read_bytes()[:500])
    one_line_error(capsys, "--artifact", p, match=f"{p}: not a readable artifact")


def test_image_shape_not_matching_config(capsys, tmp_path):
    p = tmp_path / "f.npz"
    save_artifact(random_artifact(PRESETS["fmnist-small"], seed=0), p)
    one_line_error(capsys, "--artifact", p, "--dataset", "digits",
                   match="digits images are 8x8 but the artifact's config fmnist-small expects 28x28")


def test_bad_limit(capsys, artifact_path):
    one_line_error(capsys, "--artifact", artifact_path, "--limit", 0, match="--limit must be at least 1")


def test_missing_data_dir(capsys, artifact_path, tmp_path):
    one_line_error(capsys, "--artifact", artifact_path, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "x",
                   match="get-fashion-mnist.sh")


def write_idx(d, prefix, images, labels):
    d.mkdir(exist_ok=True)
    for kind, a in (("images-idx3", images), ("labels-idx1", labels)):
        raw = struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
        (d / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))


def test_idx_dataset_pixels_and_labels_checked(capsys, artifact_path, tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 32, (12, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, 12).astype(np.uint8)
    write_idx(tmp_path / "ok", "t10k", imgs, labels)
    rc, out, err = run(capsys, "--artifact", artifact_path, "--dataset", "mnist", "--data-dir", tmp_path / "ok", "--json")
    assert rc == 0, err
    assert json.loads(out)["images"] == 12

    write_idx(tmp_path / "bright", "t10k", imgs + 200, labels)
    one_line_error(capsys, "--artifact", artifact_path, "--dataset", "mnist", "--data-dir", tmp_path / "bright",
                   match="pixels go up to 231 but config digits-tiny has pixel_bits=5 (max 31)")

    write_idx(tmp_path / "many", "t10k", imgs, labels + 5)
    one_line_error(capsys, "--artifact", artifact_path, "--dataset", "mnist", "--data-dir", tmp_path / "many",
                   match=f"has labels {labels.min() + 5}..14 but config digits-tiny has 10 classes")


def test_module_entry_point_exit_codes(tmp_path):
    r = subprocess.run([sys.executable, "-m", "quant.evaluate", "--artifact", str(tmp_path / "no.npz")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no such artifact file" in r.stderr
    r = subprocess.run([sys.executable, "-m", "quant.evaluate", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--artifact" in r.stdout and "(default: test)" in r.stdout
