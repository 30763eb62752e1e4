"""python -m model.inspect: PNGs written, firing rates equal to the golden model's, one-line errors."""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from model.config import PRESETS
from model.data import load_digits_split
from model.inspect import main, output_paths
from quant import golden
from quant.artifact import load_artifact, random_artifact, save_artifact

CFG = PRESETS["digits-tiny"]
IMAGE = 5


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def table_rows(out):
    """{layer: [cells]} from the printed Markdown table."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 5 and cells[0] != "spiking layer":
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("insp") / "digits.npz"
    save_artifact(random_artifact(CFG, seed=4), p)
    return p


@pytest.fixture(scope="module")
def done(artifact_path, tmp_path_factory):
    """One real run on digits test image IMAGE; (out dir, stdout, paths). capsys is per test: capture by hand."""
    out_dir = tmp_path_factory.mktemp("insp_out") / "inspect"
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        rc = main(["--artifact", str(artifact_path), "--image", str(IMAGE), "--out", str(out_dir)])
    assert rc == 0, buf_err.getvalue()
    return out_dir, buf_out.getvalue(), output_paths(out_dir, artifact_path, "digits", "test", IMAGE)


def test_pngs_written(done):
    out_dir, _, paths = done
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in paths)  # no temp files left
    overview, raster = paths
    assert overview.name == f"digits-digits-test-{IMAGE}-overview.png"
    w, h = png_size(overview)
    assert 1000 <= w <= 4000 and 500 <= h <= 4000
    w, h = png_size(raster)
    assert 1000 <= w <= 4000 and 800 <= h <= 6000  # 9 layer panels for digits-tiny
    for p in paths:
        assert p.stat().st_size > 20_000


def test_printed_rates_and_class_equal_the_golden_model(done, artifact_path):
    _, out, _ = done
    x, y = load_digits_split("test")
    rec = golden.forward(load_artifact(artifact_path), x[IMAGE : IMAGE + 1])
    pred = int(rec["pred"][0])
    assert f"class: true {y[IMAGE]}, predicted {pred} ({'correct' if pred == y[IMAGE] else 'wrong'})" in out
    assert "logits: " + " ".join(f"{c}:{int(v)}" for c, v in enumerate(rec["logits"][0])) in out
    rows = table_rows(out)
    assert list(rows) == golden.spike_layers(CFG)
    for k in golden.spike_layers(CFG):
        a = rec[k][0]
        shape, spikes, neurons, rate, *per_t = rows[k]
        assert shape == "x".join(map(str, a.shape)), k
        assert int(spikes) == int(a.sum()) and int(neurons) == a.size, k
        assert rate == f"{a.sum() / a.size:.4f}", k
        assert per_t == [f"{a[t].mean():.4f}" for t in range(CFG.timesteps)], k
    assert re.search(r"\| b0\.kv +\| 4x32 +\|", out)
    assert "wrote " in out and out.count("-overview.png") == 1


def test_existing_output_needs_force(done, artifact_path, capsys):
    out_dir, _, paths = done
    before = [p.read_bytes() for p in paths]
    rc, out, err = run(capsys, "--artifact", artifact_path, "--image", IMAGE, "--out", out_dir)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "exists; pass --force" in err
    assert [p.read_bytes() for p in paths] == before
    # one of the two missing is still refused for the other: nothing is half-written
    paths[1].unlink()
    rc, out, err = run(capsys, "--artifact", artifact_path, "--image", IMAGE, "--out", out_dir)
    assert rc == 2 and not paths[1].exists()
    rc, out, err = run(capsys, "--artifact", artifact_path, "--image", IMAGE, "--out", out_dir, "--force")
    assert rc == 0, err
    assert png_size(paths[1])[0] >= 1000


def one_line_error(capsys, *argv, match):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert match in err, err


def test_artifact_errors(capsys, tmp_path, artifact_path):
    one_line_error(capsys, "--artifact", tmp_path / "none.npz", "--image", 0, "--out", tmp_path / "o",
                   match="no such artifact file")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(artifact_path.read_bytes()[:300])
    one_line_error(capsys, "--artifact", bad, "--image", 0, "--out", tmp_path / "o", match="not a readable artifact")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("index", [360, -1])
def test_image_out_of_range(capsys, tmp_path, artifact_path, index):
    one_line_error(capsys, "--artifact", artifact_path, "--image", index, "--out", tmp_path / "o",
                   match=f"--image {index} is out of range: the digits test split has 360 images (0..359)")
    assert not (tmp_path / "o").exists()


def write_idx(d, prefix, images, labels):
    d.mkdir(exist_ok=True)
    for kind, a in (("images-idx3", images), ("labels-idx1", labels)):
        raw = struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
        (d / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))


def test_dataset_mismatch(capsys, tmp_path, artifact_path):
    fm = tmp_path / "fm.npz"
    save_artifact(random_artifact(PRESETS["fmnist-small"], seed=0), fm)
    one_line_error(capsys, "--artifact", fm, "--image", 0, "--dataset", "digits", "--out", tmp_path / "o",
                   match="digits images are 8x8 but the artifact's config fmnist-small expects 28x28")
    # 8x8 images of 8-bit pixels: the right size, the wrong pixel depth for digits-tiny (5 bits)
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "m8", "t10k", rng.integers(0, 16, (4, 8, 8), dtype=np.uint8), np.arange(4, dtype=np.uint8))
    one_line_error(capsys, "--artifact", artifact_path, "--image", 0, "--dataset", "mnist", "--data-dir",
                   tmp_path / "m8", "--out", tmp_path / "o",
                   match="mnist pixels are 8-bit but the artifact's config digits-tiny has pixel_bits=5")
    one_line_error(capsys, "--artifact", fm, "--image", 0, "--dataset", "fashion-mnist", "--data-dir",
                   tmp_path / "nowhere", "--out", tmp_path / "o", match="does not exist")
    assert not (tmp_path / "o").exists()


def test_fmnist_small_config(capsys, tmp_path):
    """The bigger preset (49 tokens, 2 blocks, H=128) through 28x28 IDX files."""
    fm = tmp_path / "fm.npz"
    art = random_artifact(PRESETS["fmnist-small"], seed=1)
    save_artifact(art, fm)
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "mn", "t10k", imgs, np.array([3, 1, 4], np.uint8))
    rc, out, err = run(capsys, "--artifact", fm, "--image", 2, "--dataset", "mnist", "--data-dir", tmp_path / "mn",
                       "--out", tmp_path / "o")
    assert rc == 0, err
    rows = table_rows(out)
    rec = golden.forward(art, imgs[2:3])
    assert list(rows) == golden.spike_layers(PRESETS["fmnist-small"])
    for k, cells in rows.items():
        assert int(cells[1]) == int(rec[k].sum()) and int(cells[2]) == rec[k].size, k
    overview, raster = output_paths(tmp_path / "o", fm, "mnist", "test", 2)
    assert png_size(overview)[1] > 900  # two blocks of attention masks
    w, h = png_size(raster)
    assert w >= 1300 and h >= 2000  # 17 layer panels, >= 2.5 pixels per fc1 column


def test_help_and_module_entry(tmp_path):
    r = subprocess.run([sys.executable, "-m", "model.inspect", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "(default: inspect)" in r.stdout and "(default: test)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "model.inspect", "--artifact", str(tmp_path / "no.npz"), "--image", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "no such artifact file" in r.stderr
