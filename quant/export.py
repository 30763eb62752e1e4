"""Export a trained run to an artifact and score it: ``python -m quant.export runs/NAME --out A.npz``.

The artifact holds exactly the integers `model.network.STFNet.integer_params` computes in the
training forward (weights from Brevitas, folded norms rounded and clamped), so the golden model
on the artifact and the PyTorch QAT model compute the same integers. Before writing, every
weight matrix is checked against Brevitas' own integers (``quant_weight().int()``) and
Brevitas' own reconstruction ``(int - zero_point) * scale == value``.

After writing, the golden model runs on the test split of the run's data set and the command
prints the float-QAT accuracy, the golden accuracy, how many predictions agree and whether the
integer logits are exactly equal. A JSON summary is written next to the artifact (same stem).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.config import ConfigError, ModelConfig
from model.data import DataError, load_dataset
from quant.artifact import Artifact, ArtifactError, atomic_write_bytes, param_spec, save_artifact

__all__ = ["ExportError", "model_to_artifact", "check_brevitas_ints", "load_run", "evaluate", "main"]


class ExportError(Exception):
    """A run cannot be exported; the message names the run and the problem."""


def check_brevitas_ints(model, params: dict[str, np.ndarray]) -> None:
    """Assert that every exported weight equals Brevitas' integers for its layer."""
    for name, layer in model.weight_layers().items():
        qw = layer.quant_weight()
        ints = qw.int()
        zp = qw.zero_point
        if torch.any(zp != 0):
            raise ExportError(f"{name}: Brevitas zero point is not 0; the contract needs symmetric weights")
        recon = (ints.to(torch.float32) - zp) * qw.scale
        if not torch.allclose(recon, qw.value, rtol=1e-6, atol=1e-7):
            err = float((recon - qw.value).abs().max())
            raise ExportError(f"{name}: (int - zero_point) * scale differs from Brevitas' value by {err}")
        brevitas_int = ints.detach().to(torch.int64).t().numpy()
        if brevitas_int.shape != params[name].shape or not np.array_equal(brevitas_int, params[name]):
            raise ExportError(f"{name}: exported integers differ from Brevitas quant_weight().int()")


@torch.no_grad()
def model_to_artifact(model, info: dict[str, Any] | None = None) -> Artifact:
    """The model's integer parameters as a validated `Artifact` (weights checked against Brevitas)."""
    P = model.integer_params()
    spec = param_spec(model.cfg)
    params = {}
    for name in spec:
        a = P[name].detach().cpu().to(torch.float64).numpy()
        ints = np.rint(a).astype(np.int64)
        if not np.array_equal(ints, a):
            raise ExportError(f"{name}: not integer-valued in the model (a rounding is missing)")
        params[name] = ints
    check_brevitas_ints(model, params)
    return Artifact(model.cfg, params, dict(info or {}))


def load_run(run_dir: str | Path):
    """(model on CPU in eval mode, checkpoint dict) from a run folder written by model.train."""
    from model.network import STFNet

    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder (train one: python -m model.train --out {run_dir})")
    if not ckpt_path.is_file():
        raise ExportError(f"{run_dir}: no checkpoint.pt; the run has not finished an epoch yet")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        cfg = ModelConfig.from_json(ckpt["config"])
    except (RuntimeError, KeyError, ConfigError, EOFError) as e:
        raise ExportError(f"{ckpt_path}: not a readable checkpoint: {e}") from None
    model = STFNet(cfg)
    # the moving average of the weights is what training evaluated, so it is what ships
    model.load_state_dict(ckpt["ema"] if ckpt.get("ema") else ckpt["model"])
    model.eval()
    return model, ckpt


@torch.no_grad()
def evaluate(model, artifact: Artifact, images: np.ndarray, labels: np.ndarray, batch: int = 512) -> dict[str, Any]:
    """Float-QAT vs golden: accuracies, prediction agreement, exact-logit agreement."""
    from quant import golden

    q_logits, q_int = [], []
    for i in range(0, len(images), batch):
        lg, out = model(torch.from_numpy(images[i : i + batch].astype(np.int64)))
        q_logits.append(lg)
        q_int.append(out["logits"])
    q_logits = torch.cat(q_logits).numpy()
    q_int = torch.cat(q_int).to(torch.float64).numpy()
    q_pred = np.argmax(q_logits, axis=-1)
    g_pred, g_logits = golden.predict(artifact, images)
    n = len(labels)
    return {
        "test_images": n,
        "qat_accuracy": float(np.mean(q_pred == labels)),
        "golden_accuracy": float(np.mean(g_pred == labels)),
        "agreement": float(np.mean(q_pred == g_pred)),
        "logits_equal": bool(np.array_equal(q_int, g_logits.astype(np.float64))),
        "logits_equal_images": int(np.sum(np.all(q_int == g_logits, axis=-1))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m quant.export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("run", help="run folder written by python -m model.train")
    ap.add_argument("--out", required=True, help="artifact path (.npz); a .json summary is written beside it")
    ap.add_argument("--force", action="store_true", help="replace an existing artifact")
    ap.add_argument("--data-dir", default=None, help="IDX folder for the test split (default: the run's)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    summary_path = out.with_suffix(".json")
    try:
        if out.suffix != ".npz":
            raise ExportError(f"--out {out}: artifacts are .npz files")
        for p in (out, summary_path):
            if p.exists() and not args.force:
                raise ExportError(f"{p} exists; pass --force to replace it")
        model, ckpt = load_run(args.run)
        run_args = json.loads(ckpt.get("args", "{}"))
        metrics = json.loads(ckpt.get("metrics", "[]"))
        info = {
            "run": Path(args.run).name,
            "epochs": int(ckpt["epoch"]),
            "seed": run_args.get("seed"),
            "dataset": run_args.get("dataset"),
            "command": run_args.get("command"),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if metrics:
            info["train_seconds"] = round(sum(m["seconds"] for m in metrics), 1)
        artifact = model_to_artifact(model, info)

        dataset = run_args.get("dataset", "digits")
        images, labels = load_dataset(dataset, "test", args.data_dir or run_args.get("data_dir"))
        res = evaluate(model, artifact, images, labels)
        artifact.info.update({k: res[k] for k in ("qat_accuracy", "golden_accuracy", "agreement", "logits_equal")})
        save_artifact(artifact, out, overwrite=args.force)
        summary = {"artifact": str(out), "config": model.cfg.to_dict(), "config_hash": model.cfg.hash,
                   "checksum": artifact.checksum, **info, **res}
        atomic_write_bytes(summary_path, (json.dumps(summary, indent=2) + "\n").encode(), overwrite=args.force)
    except (ExportError, ArtifactError, DataError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} (config {model.cfg.name}, hash {model.cfg.hash}) and {summary_path}")
    print(f"{dataset} test split, {res['test_images']} images:")
    print(f"  float-QAT accuracy  {100 * res['qat_accuracy']:.2f} %")
    print(f"  golden accuracy     {100 * res['golden_accuracy']:.2f} %")
    print(f"  agreement           {100 * res['agreement']:.2f} % of predictions")
    print(f"  integer logits      {'exactly equal' if res['logits_equal'] else 'DIFFER'} "
          f"({res['logits_equal_images']}/{res['test_images']} images)")
    return 0 if res["logits_equal"] else 2


if __name__ == "__main__":
    sys.exit(main())
