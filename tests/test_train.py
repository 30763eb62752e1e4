"""The training CLI: run folders, checkpoints, resume after an interrupt, NaN stop, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

import model.train as train
from model.config import ModelConfig

TINY = ModelConfig(name="tiny-train", image_shape=(8, 8, 1), pixel_bits=5, patch=4, timesteps=2, dim=8,
                   blocks=1, mlp_ratio=1, classes=10)
BATCH = 256
STEPS = math.ceil(1437 / BATCH)  # digits train split: 1437 images


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(TINY.to_json())
    return str(p)


def _args(cfg_file, out, *extra, epochs=1):
    return ["--config", cfg_file, "--dataset", "digits", "--epochs", str(epochs), "--seed", "3",
            "--out", str(out), "--batch-size", str(BATCH), *extra]


def _ckpt(out):
    return torch.load(out / train.CHECKPOINT, map_location="cpu", weights_only=True)


def test_run_writes_checkpoint_metrics_curves(cfg_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(_args(cfg_file, out)) == 0
    ck = _ckpt(out)
    assert ck["epoch"] == 1 and ModelConfig.from_json(ck["config"]) == TINY
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    metrics = json.loads((out / train.METRICS).read_text())
    assert [m["epoch"] for m in metrics["epochs"]] == [1]
    assert set(metrics["epochs"][0]["firing_rates"]) >= {"enc", "b0.q", "head"}
    assert (out / train.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "firing rates after threshold initialisation" in text and "epoch 1/1" in text


def test_subsets_train_and_score_the_first_images(cfg_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(_args(cfg_file, out, "--train-subset", "100", "--test-subset", "40")) == 0
    assert "digits: 100 train / 40 test images" in capsys.readouterr().out
    args = json.loads(_ckpt(out)["args"])
    assert (args["train_subset"], args["test_subset"]) == (100, 40)
    acc = json.loads((out / train.METRICS).read_text())["epochs"][0]["test_accuracy"]
    assert round(acc * 40) == pytest.approx(acc * 40)  # a whole number of the 40 images


def test_refuses_existing_out_without_force(cfg_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    assert train.main(_args(cfg_file, out)) == 2
    assert "exists; pass --resume" in capsys.readouterr().err
    assert not (out / train.CHECKPOINT).exists()
    assert train.main(_args(cfg_file, out, "--force")) == 0
    assert _ckpt(out)["epoch"] == 1
    assert (out / "keep.txt").read_text() == "user file"  # --force deletes only run files


def test_resume_continues_to_more_epochs(cfg_file, tmp_path):
    out = tmp_path / "run"
    assert train.main(_args(cfg_file, out, epochs=1)) == 0
    assert train.main(_args(cfg_file, out, "--resume", epochs=2)) == 0
    assert _ckpt(out)["epoch"] == 2
    metrics = json.loads((out / train.METRICS).read_text())
    assert [m["epoch"] for m in metrics["epochs"]] == [1, 2]


def test_interrupted_run_resumes_to_the_same_result(cfg_file, tmp_path, monkeypatch):
    """Killed in the middle of epoch 2, resumed: bit-identical to an uninterrupted run."""
    straight = tmp_path / "straight"
    assert train.main(_args(cfg_file, straight, epochs=2)) == 0

    calls = {"n": 0}
    real = train.compute_loss

    def interrupting(logits, labels):
        calls["n"] += 1
        if calls["n"] == STEPS + 2:
            raise KeyboardInterrupt
        return real(logits, labels)

    out = tmp_path / "interrupted"
    monkeypatch.setattr(train, "compute_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train.main(_args(cfg_file, out, epochs=2))
    monkeypatch.setattr(train, "compute_loss", real)
    assert _ckpt(out)["epoch"] == 1  # only the epoch in progress was lost
    assert train.main(_args(cfg_file, out, "--resume", epochs=2)) == 0
    a, b = _ckpt(straight), _ckpt(out)
    assert b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_nan_loss_stops_and_keeps_last_checkpoint(cfg_file, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = train.compute_loss

    def nan_in_epoch_2(logits, labels):
        calls["n"] += 1
        loss = real(logits, labels)
        return loss * float("nan") if calls["n"] > STEPS + 1 else loss

    monkeypatch.setattr(train, "compute_loss", nan_in_epoch_2)
    out = tmp_path / "run"
    assert train.main(_args(cfg_file, out, epochs=3)) == 3
    err = capsys.readouterr().err
    assert "loss became nan at epoch 2, step 2" in err
    assert "last good checkpoint (epoch 1)" in err and "Lower --lr" in err
    ck = _ckpt(out)
    assert ck["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert len(json.loads((out / train.METRICS).read_text())["epochs"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--config", "no-such-preset", "--dataset", "digits"], "unknown config 'no-such-preset'"),
    (["--config", "missing.json", "--dataset", "digits"], "does not exist"),
    (["--config", "digits-tiny", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--config", "digits-tiny", "--dataset", "mnist"], "mnist needs --data-dir"),
    (["--config", "fmnist-small", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fm"],
     "data directory /nonexistent/fm does not exist"),
    (["--config", "fmnist-small", "--dataset", "digits"], "expects 28x28 images but digits has 8x8"),
    (["--config", "digits-tiny", "--dataset", "digits", "--train-subset", "1438"],
     "--train-subset must be in [0, 1437]"),
    (["--config", "digits-tiny", "--dataset", "digits", "--test-subset", "-1"], "--test-subset must be in [0, 360]"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert train.main([*argv, "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_is_refused(cfg_file, tmp_path, capsys):
    assert train.main(_args(cfg_file, tmp_path / "run", "--resume")) == 2
    assert "start the run without --resume" in capsys.readouterr().err


def test_resume_with_other_config_is_refused(cfg_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(_args(cfg_file, out)) == 0
    assert train.main(_args(cfg_file, out, "--resume", "--stf", "off", epochs=2)) == 2
    assert "trains config tiny-train" in capsys.readouterr().err


def test_augment_shift_moves_by_one_pixel():
    x = torch.zeros(200, 8, 8, dtype=torch.int64)
    x[:, 3, 4] = 7
    y = train.augment_shift(x, torch.Generator().manual_seed(0), prob=1.0)
    pos = (y == 7).nonzero()[:, 1:]
    assert len(pos) == 200 and ((pos - torch.tensor([3, 4])).abs() <= 1).all()
    assert len({tuple(p.tolist()) for p in pos}) == 9
    assert torch.equal(train.augment_shift(x, torch.Generator(), prob=0.0), x)
