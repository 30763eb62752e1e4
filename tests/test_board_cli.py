"""python -m boards.ulx3s: against the simulated board (--sim, golden core for speed) and its
error paths (missing port, nothing answering, bad images, mismatched artifacts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from boards.simboard import default_artifact
from boards.ulx3s import main, read_png
from model.data import load_digits_split
from quant.golden import forward

ROOT = Path(__file__).resolve().parent.parent
SIM = ["--sim", "--sim-core", "golden"]


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    errs = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(errs) == 1, err
    assert err.rstrip().splitlines()[-1] == errs[0]
    return errs[0]


def save_png(path, a8: np.ndarray) -> Path:
    """Save a 2-D uint8 array as a grey PNG."""
    try:
        from PIL import Image

        Image.fromarray(a8.astype(np.uint8), mode="L").save(path)
    except ImportError:
        import matplotlib.pyplot as plt

        plt.imsave(path, a8, cmap="gray", vmin=0, vmax=255)
    return Path(path)


@pytest.fixture(scope="module")
def artifact():
    return default_artifact()[0]


@pytest.fixture(scope="module")
def digits():
    return load_digits_split("test")


def test_help_shows_defaults():
    r = subprocess.run([sys.executable, "-m", "boards.ulx3s", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps lines
    assert "(default: /dev/ttyUSB0)" in text and "(default: 115200)" in text and "--sim" in text
    r = subprocess.run([sys.executable, "-m", "boards.ulx3s", "classify", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    text = " ".join(r.stdout.split())
    assert "(default: 100)" in text and "IMAGE.png" in text


def test_info_sim(capsys, artifact):
    rc, out, err = run(capsys, *SIM, "info")
    assert rc == 0, err
    assert "SIMULATED board" in err
    assert f"{artifact.config.hash32:08x}" in out and "baked into the bitstream" in out and "simulated" in out


def test_classify_dataset_sim(capsys, tmp_path, artifact, digits):
    x, y = digits
    out_json = tmp_path / "r.json"
    rc, out, err = run(capsys, *SIM, "classify", "--dataset", "digits", "--count", "3", "--start", "5",
                       "--out", str(out_json))
    assert rc == 0, err
    ref = forward(artifact, x[5:8], record=False)
    for i in range(3):
        assert f"digits/test[{5 + i}]: class {ref['pred'][i]}  label {y[5 + i]}" in out
    assert "3 images in" in out and "images/s, simulated)" in out and "equal to the golden model on 100.0 %" in out
    assert "accuracy" in out and "link: 0 retries, 0 NAKs" in out
    rep = json.loads(out_json.read_text())
    assert rep["summary"]["simulated"] is True and rep["summary"]["golden_agreement"] == 1.0
    assert [r["logits"] for r in rep["results"]] == ref["logits"].tolist()
    # refuses to overwrite without --force
    rc, out, err = run(capsys, *SIM, "classify", "--dataset", "digits", "--count", "1", "--out", str(out_json))
    assert rc == 1 and "exists; pass --force" in one_line_error(err)


def test_classify_png_sim(capsys, tmp_path, artifact, digits):
    x, _ = digits
    img = x[11]
    png = save_png(tmp_path / "d.png", np.rint(img.astype(float) * 255 / 16))
    assert (read_png(png, (8, 8, 1), 5) == img[..., None]).all()  # 0..255 back to digits' 0..16
    rc, out, err = run(capsys, *SIM, "classify", str(png))
    assert rc == 0, err
    ref = forward(artifact, img[None], record=False)
    assert f"d.png: class {ref['pred'][0]}  logits {ref['logits'][0].tolist()}" in out
    # dark ink on white, inverted back
    inv = save_png(tmp_path / "inv.png", 255 - np.rint(img.astype(float) * 255 / 16))
    assert (read_png(inv, (8, 8, 1), 5, invert=True) == img[..., None]).all()


def test_png_errors(capsys, tmp_path):
    big = save_png(tmp_path / "big.png", np.zeros((16, 16)))
    rc, out, err = run(capsys, *SIM, "classify", str(big))
    assert rc == 1 and "big.png is 16x16 pixels; the model takes 8x8: resize it, or pass --resize" in one_line_error(err)
    try:
        import PIL  # noqa: F401

        rc, out, err = run(capsys, *SIM, "classify", "--resize", str(big))
        assert rc == 0, err
    except ImportError:
        pass
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    rc, out, err = run(capsys, *SIM, "classify", str(junk))
    assert rc == 1 and "junk.png: not a readable image" in one_line_error(err)
    rc, out, err = run(capsys, *SIM, "classify", str(tmp_path / "missing.png"))
    assert rc == 1 and "missing.png: no such image file" in one_line_error(err)
    rc, out, err = run(capsys, *SIM, "classify", "--pixel-max", "99", str(big))
    assert rc == 1 and "--pixel-max 99 is outside the model's pixel range 1..31" in one_line_error(err)


def test_load_says_weights_are_baked(capsys):
    art = str(ROOT / "artifacts" / "digits-tiny.npz")
    if not Path(art).is_file():
        pytest.skip("needs the shipped artifact (the simulated board bakes it in)")
    rc, out, err = run(capsys, *SIM, "load", art)
    line = one_line_error(err)
    assert rc == 1
    assert "weights baked in (IDENTITY flags 0x02: not loadable)" in line  # 0x02: spike counts
    assert f"rebuild the bitstream with it: python -m hw.build --board ulx3s --artifact {art} --program" in line


def test_mismatched_artifact(capsys, tmp_path):
    from model.config import PRESETS
    from quant.artifact import random_artifact, save_artifact

    other = tmp_path / "fmnist.npz"
    save_artifact(random_artifact(PRESETS["fmnist-small"], 0), other)
    rc, out, err = run(capsys, *SIM, "info", "--artifact", str(other))
    assert rc == 0 and "DOES NOT match" in out
    rc, out, err = run(capsys, *SIM, "classify", "--dataset", "digits", "--count", "1", "--artifact", str(other))
    line = one_line_error(err)
    assert rc == 1 and "fmnist.npz has config hash" in line and f"--artifact {other}" in line
    rc, out, err = run(capsys, *SIM, "load", str(other))
    assert rc == 1 and "config hash" in one_line_error(err)
    rc, out, err = run(capsys, *SIM, "load", str(tmp_path / "nope.npz"))
    assert rc == 1 and "no such artifact file" in one_line_error(err)


@pytest.mark.parametrize("argv,msg", [
    (["classify"], "nothing to classify"),
    (["classify", "x.png", "--dataset", "digits"], "not both"),
    (["classify", "--dataset", "digits", "--count", "0"], "count >= 1"),
    (["classify", "--dataset", "digits", "--start", "9999"], "has 360 images"),
    (["classify", "--dataset", "nope"], "unknown dataset 'nope'"),
])
def test_bad_classify_arguments(capsys, argv, msg):
    rc, out, err = run(capsys, *SIM, *argv)
    assert rc == 1 and msg in one_line_error(err)


def test_bad_global_arguments(capsys):
    rc, out, err = run(capsys, "--retries", "-1", "info")
    assert rc == 2 and "--retries must be >= 0" in one_line_error(err)


def test_missing_port(capsys):
    rc, out, err = run(capsys, "--port", "/dev/ttyNOPE7", "info")
    line = one_line_error(err)
    assert rc == 1 and "serial port /dev/ttyNOPE7 does not exist" in line and "--sim" in line


def test_port_that_is_not_a_serial_port(capsys, tmp_path):
    f = tmp_path / "notatty"
    f.write_text("")
    rc, out, err = run(capsys, "--port", str(f), "info")
    assert rc == 1 and f"cannot open {f}" in one_line_error(err)


def test_no_board_answering(capsys):
    # a pseudo-terminal: a real serial device node where nothing ever answers
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        rc, out, err = run(capsys, "--port", name, "--timeout", "0.05", "--retries", "1", "info")
        line = one_line_error(err)
        assert rc == 1 and f"no board answered on {name} at 115200 baud" in line
        assert "IDENTIFY failed after 2 attempts" in line and "--baud" in line
    finally:
        os.close(master)
        os.close(slave)
