"""Train, cache and score model variants for the experiment benches (``stf``, ``accuracy``).

Not a benchmark itself (`bench.__main__.available` leaves it out). One function
trains a variant the way ``python -m model.train`` does, by calling `model.train.main` in this
process (same loop, same defaults, same checkpoint), with the output of the training loop going
to ``<run>/train.log``; the run folder is named after everything that determines the result
(config hash, dataset, seed, epochs, subsets, shift probability), so a finished run with the same
settings is reused instead of retrained and one interrupted after some epochs is continued with
``--resume`` (so a bench can be stopped and started again, and the
``accuracy`` bench reuses the ``stf`` bench's digits-tiny seed-0 run when the budgets match).

Scoring helpers shared by the benches:

* `qat_golden` - QAT accuracy (the PyTorch forward), integer golden accuracy (`quant.golden`)
  and whether the integer logits are exactly equal (`quant.export.evaluate`);
* `float_accuracy` - the "float" model: the same trained parameters with Brevitas' weight
  quantizer bypassed (every weight matrix is ``W / s`` instead of ``round(W / s)``, s the
  per-channel scale, so it stays in the units the thresholds and multipliers were trained in);
  every other operation of the network (LIF thresholds, requantization floors, membrane halving)
  is unchanged. The model has no other float mode: it trains in the folded integer form
  (docs/training.md), so this is "the same network without weight quantization".
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.config import PRESETS, ModelConfig
from quant.artifact import Artifact, atomic_write_bytes

__all__ = ["VariantError", "TrainedRun", "run_name", "untrained_run", "train_variant", "qat_golden", "float_accuracy",
           "unquantized_weights"]


class VariantError(Exception):
    """A variant could not be trained or loaded; the message names the run folder and the cause."""


@dataclass
class TrainedRun:
    cfg: ModelConfig
    dataset: str
    seed: int
    epochs: int
    run_dir: Path
    model: Any  # model.network.STFNet, eval mode, the EMA weights (what quant.export ships)
    artifact: Artifact
    metrics: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    reused: bool = False


def run_name(cfg: ModelConfig, dataset: str, seed: int, epochs: int, train_subset: int, test_subset: int,
             shift_prob: float, ema: float = 0.995) -> str:
    """The run folder's name: everything the trained weights depend on."""
    sub = f"-n{train_subset}" if train_subset else ""
    tsub = f"-m{test_subset}" if test_subset else ""
    em = f"-ema{ema:g}"
    return (f"{dataset}-{cfg.name}-{cfg.stf}-w{cfg.weight_bits}-T{cfg.timesteps}-s{seed}-e{epochs}{sub}{tsub}"
            f"-p{shift_prob:g}{em}-{cfg.hash[:8]}")


def _state(run_dir: Path, cfg: ModelConfig, want: dict[str, Any], epochs: int) -> str:
    """"done", "partial" (same settings, fewer epochs: resumable) or "none" (train afresh)."""
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.is_file():
        return "none"
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        old = json.loads(ckpt["args"])
        same = (ModelConfig.from_json(ckpt["config"]).hash == cfg.hash and old.get("epochs") == epochs
                and all(old.get(k, 0) == v for k, v in want.items()))
    except Exception:  # an unreadable checkpoint is retrained
        return "none"
    if not same:
        return "none"
    return "done" if int(ckpt["epoch"]) == epochs else "partial"


def _run_state(cfg: ModelConfig, dataset: str, runs_dir: Path, epochs: int, seed: int, train_subset: int,
               test_subset: int, shift_prob: float, ema: float) -> tuple[Path, str]:
    """The run folder of these settings and its `_state`."""
    run_dir = Path(runs_dir) / run_name(cfg, dataset, seed, epochs, train_subset, test_subset, shift_prob, ema)
    want = {"dataset": dataset, "seed": seed, "train_subset": train_subset, "test_subset": test_subset,
            "shift_prob": shift_prob, "ema": ema}
    return run_dir, _state(run_dir, cfg, want, epochs)


def untrained_run(cfg: ModelConfig, dataset: str, runs_dir: Path, *, epochs: int, seed: int, train_subset: int = 0,
                  test_subset: int = 0, shift_prob: float = 0.1, ema: float = 0.995) -> str | None:
    """The run folder's name when `train_variant` with these arguments would have to train, else None."""
    run_dir, state = _run_state(cfg, dataset, runs_dir, epochs, seed, train_subset, test_subset, shift_prob, ema)
    return None if state == "done" else run_dir.name


def train_variant(cfg: ModelConfig, dataset: str, runs_dir: Path, *, epochs: int, seed: int,
                  train_subset: int = 0, test_subset: int = 0, shift_prob: float = 0.1,
                  ema: float = 0.995, quiet: bool = True) -> TrainedRun:
    """Train `cfg` on `dataset` with `model.train.main` (or reuse the finished run) and load it.

    Every training option not given here is model.train's default (lr, batch size, TET loss,
    threshold initialisation). The EMA decay is always passed: the ablations were measured at
    0.995, model.train's default until the shipped recipe moved to 0.999. ``OMP_NUM_THREADS`` is the
    caller's (set it to 1).
    """
    from model.train import main as train_main
    from quant.export import ExportError, load_run, model_to_artifact

    runs_dir = Path(runs_dir)
    run_dir, state = _run_state(cfg, dataset, runs_dir, epochs, seed, train_subset, test_subset, shift_prob, ema)
    reused = state == "done"
    if not reused:
        runs_dir.mkdir(parents=True, exist_ok=True)
        if cfg.name in PRESETS and cfg == PRESETS[cfg.name].with_stf(cfg.stf):
            config_args = ["--config", cfg.name, "--stf", cfg.stf]
        else:
            cfg_path = runs_dir / f"{run_dir.name}.config.json"
            atomic_write_bytes(cfg_path, (cfg.to_json() + "\n").encode(), overwrite=True)
            config_args = ["--config", str(cfg_path)]
        argv = [*config_args, "--dataset", dataset, "--epochs", str(epochs), "--seed", str(seed),
                "--shift-prob", f"{shift_prob:g}", "--train-subset", str(train_subset),
                "--test-subset", str(test_subset), "--out", str(run_dir),
                "--resume" if state == "partial" else "--force"]
        argv += ["--ema", f"{ema:g}"]
        run_dir.mkdir(parents=True, exist_ok=True)
        log = io.StringIO()
        t0 = time.time()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            rc = train_main(argv)
        old_log = (run_dir / "train.log").read_text() if state == "partial" and (run_dir / "train.log").is_file() else ""
        atomic_write_bytes(run_dir / "train.log", (old_log + log.getvalue()).encode(), overwrite=True)
        if rc != 0:
            tail = "\n".join(log.getvalue().strip().splitlines()[-3:])
            raise VariantError(f"training {run_dir} failed (exit {rc}); see {run_dir / 'train.log'}:\n{tail}")
        if not quiet:
            print(f"  trained {run_dir.name} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    try:
        model, ckpt = load_run(run_dir)
    except ExportError as e:
        raise VariantError(str(e)) from None
    metrics = json.loads(ckpt.get("metrics", "[]"))
    info = {"run": run_dir.name, "epochs": int(ckpt["epoch"]), "seed": seed, "dataset": dataset}
    art = model_to_artifact(model, info)
    return TrainedRun(cfg, dataset, seed, epochs, run_dir, model, art, metrics,
                      round(sum(m["seconds"] for m in metrics), 1), reused)


def qat_golden(run: TrainedRun, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """`quant.export.evaluate`: QAT and golden accuracy, agreement, exact integer logits."""
    from quant.export import evaluate

    return evaluate(run.model, run.artifact, images, labels)


@contextlib.contextmanager
def unquantized_weights(model):
    """Within the block, every IntLinear of `model` hands out ``W / s`` (not rounded to integers)."""
    layers = list(model.weight_layers().values())
    saved = [layer.int_weight for layer in layers]

    def make(layer):
        def int_weight():
            qw = layer.linear.quant_weight()
            scale = qw.scale.detach()
            out = layer.linear.out_features
            w = layer.linear.weight / scale  # the float weight in integer units, no rounding, no clamp
            return w.t(), scale.reshape(-1).expand(out) if scale.numel() == 1 else scale.reshape(out)
        return int_weight

    try:
        for layer in layers:
            layer.int_weight = make(layer)
        yield model
    finally:
        for layer, f in zip(layers, saved):
            layer.int_weight = f


@torch.no_grad()
def float_accuracy(model, images: np.ndarray, labels: np.ndarray, batch: int = 512) -> float:
    """Accuracy of `model` with its weight quantizers bypassed (see the module doc)."""
    correct = 0
    with unquantized_weights(model):
        for i in range(0, len(images), batch):
            logits, _ = model(torch.from_numpy(images[i : i + batch].astype(np.int64)))
            correct += int((logits.argmax(-1).numpy() == labels[i : i + batch]).sum())
    return correct / max(1, len(images))
