"""Export: the artifact's weights are Brevitas' integers; the CLI scores golden vs QAT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import model.train as train
from model.config import PRESETS, ModelConfig
from model.network import STFNet
from quant import export
from quant.artifact import load_artifact, param_spec

TINY = ModelConfig(name="tiny-export", image_shape=(8, 8, 1), pixel_bits=5, patch=4, timesteps=2, dim=8,
                   blocks=2, mlp_ratio=1, classes=10, weight_bits=3)


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(name="tiny-token", readout="token"), PRESETS["digits-tiny"],
                                 PRESETS["fmnist-small"]], ids=lambda c: c.name)
def test_exported_weights_are_brevitas_ints(cfg):
    torch.manual_seed(1)
    m = STFNet(cfg)
    art = export.model_to_artifact(m)
    layers = m.weight_layers()
    assert sorted(layers) == sorted(k for k in param_spec(cfg) if k.endswith(".weight"))
    for name, layer in layers.items():
        qw = layer.quant_weight()
        ints = qw.int().to(torch.int64).t().numpy()
        np.testing.assert_array_equal(art.params[name], ints, err_msg=name)
        torch.testing.assert_close((qw.int().float() - qw.zero_point) * qw.scale, qw.value)
        lim = (1 << (cfg.weight_bits - 1)) - 1
        assert art.params[name].min() >= -lim and art.params[name].max() <= lim
        # per-output-channel scales, except the head's single scale
        assert qw.scale.numel() == (1 if name == "head.weight" else qw.value.shape[0])


def test_check_brevitas_ints_catches_a_wrong_weight():
    torch.manual_seed(2)
    m = STFNet(TINY)
    art = export.model_to_artifact(m)
    bad = dict(art.params)
    bad["b1.fc1.weight"] = bad["b1.fc1.weight"].copy()
    bad["b1.fc1.weight"][0, 0] += 1
    with pytest.raises(export.ExportError, match="b1.fc1.weight"):
        export.check_brevitas_ints(m, bad)


def test_export_cli(tmp_path, capsys):
    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(TINY.to_json())
    run = tmp_path / "runs" / "tiny"
    assert train.main(["--config", str(cfg_file), "--dataset", "digits", "--epochs", "1", "--seed", "1",
                       "--out", str(run), "--batch-size", "256"]) == 0
    out = tmp_path / "art" / "tiny.npz"
    capsys.readouterr()
    assert export.main([str(run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "golden accuracy" in text and "float-QAT accuracy" in text
    assert "agreement           100.00 %" in text and "exactly equal (360/360 images)" in text
    art = load_artifact(out)
    assert art.config == TINY and art.info["epochs"] == 1 and art.info["seed"] == 1
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["logits_equal"] is True and summary["agreement"] == 1.0
    assert summary["golden_accuracy"] == summary["qat_accuracy"] == art.info["golden_accuracy"]
    assert summary["checksum"] == art.checksum
    # the artifact is exactly the checkpoint's integers
    m, _ = export.load_run(run)
    for k, v in m.integer_params().items():
        if not k.startswith("_"):
            np.testing.assert_array_equal(art.params[k], v.detach().numpy().astype(np.int64), err_msg=k)

    assert export.main([str(run), "--out", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert export.main([str(run), "--out", str(out), "--force"]) == 0


def test_export_cli_errors(tmp_path, capsys):
    assert export.main([str(tmp_path / "nope"), "--out", str(tmp_path / "a.npz")]) == 1
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert export.main([str(tmp_path / "empty"), "--out", str(tmp_path / "a.npz")]) == 1
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert export.main([str(tmp_path / "empty"), "--out", str(tmp_path / "a.bin")]) == 1
    assert "artifacts are .npz files" in capsys.readouterr().err
