"""Score an artifact with the integer golden model: accuracy, per-class accuracy, firing rates.

``python -m quant.evaluate --artifact A --dataset digits --split test [--json]``

The images go through `quant.golden.forward` in batches (so Fashion-MNIST's 60k training images
never need their whole spike record in memory at once). A firing rate is the mean of a spiking
layer's output over images, timesteps and neurons (tokens x channels; channels for ``bL.kv``).
Every error a user can cause (no artifact, a corrupt one, a data set that does not match the
artifact's config) ends the program with exit code 1 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from model.config import ModelConfig
from model.data import DATASETS, DataError, dataset_pixel_bits, load_dataset
from quant.artifact import Artifact, ArtifactError, load_artifact

__all__ = ["EvaluationError", "evaluate", "check_dataset_fits", "main"]


class EvaluationError(Exception):
    """The data set cannot be scored with this artifact; the message says why and what fits."""


def check_dataset_fits(cfg: ModelConfig, dataset: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Refuse, before any compute, a data set whose images or labels the config cannot take."""
    h, w, c = cfg.image_shape
    shape = tuple(images.shape[1:])
    if shape not in ((h, w, c),) + (((h, w),) if c == 1 else ()):
        raise EvaluationError(
            f"{dataset} images are {'x'.join(map(str, shape))} but the artifact's config {cfg.name} "
            f"expects {h}x{w}" + (f"x{c}" if c != 1 else "") + "; use an artifact trained for this data set"
        )
    if dataset_pixel_bits(dataset) > cfg.pixel_bits and images.size and int(images.max()) > cfg.pixel_max:
        raise EvaluationError(
            f"{dataset} pixels go up to {int(images.max())} but config {cfg.name} has pixel_bits="
            f"{cfg.pixel_bits} (max {cfg.pixel_max}); use an artifact trained for this data set"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= cfg.classes):
        raise EvaluationError(
            f"{dataset} has labels {int(labels.min())}..{int(labels.max())} but config {cfg.name} has "
            f"{cfg.classes} classes"
        )


def evaluate(artifact: Artifact, images: np.ndarray, labels: np.ndarray, batch: int = 256,
             progress: bool = False) -> dict[str, Any]:
    """Accuracy, per-class accuracy and firing rates of `artifact` on (images, labels)."""
    from quant.golden import forward, spike_layers

    cfg = artifact.config
    layers = spike_layers(cfg)
    spikes = {k: 0 for k in layers}
    sizes = {k: 0 for k in layers}
    preds = []
    starts = range(0, len(images), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="golden model", unit="batch", file=sys.stderr, leave=False)
    for i in starts:
        rec = forward(artifact, images[i : i + batch], record=True)
        preds.append(rec["pred"])
        for k in layers:
            spikes[k] += int(rec[k].sum(dtype=np.int64))
            sizes[k] += rec[k].size
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    correct = pred == labels
    per_class = {}
    for c in range(cfg.classes):
        mask = labels == c
        if mask.any():
            per_class[str(c)] = {"images": int(mask.sum()), "correct": int(correct[mask].sum()),
                                 "accuracy": float(correct[mask].mean())}
    return {
        "images": int(len(labels)),
        "correct": int(correct.sum()),
        "accuracy": float(correct.mean()) if len(labels) else 0.0,
        "per_class": per_class,
        "firing_rates": {k: (spikes[k] / sizes[k] if sizes[k] else 0.0) for k in layers},
        "predictions": pred,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m quant.evaluate",
        description="Score an artifact with the integer golden model (accuracy, per-class accuracy, "
        "firing rate of every spiking layer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--artifact", required=True, type=Path, help="artifact file (.npz) from quant.export")
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder of IDX files (fashion-mnist defaults to /usr/share/datasets/fashion-mnist)")
    p.add_argument("--split", default="test", choices=("test", "train"), help="which split to score")
    p.add_argument("--limit", type=int, default=None, help="score only the first N images of the split")
    p.add_argument("--batch", type=int, default=256, help="images per golden-model batch (memory vs speed)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.limit is not None and args.limit < 1:
            raise EvaluationError(f"--limit must be at least 1, got {args.limit}")
        if args.batch < 1:
            raise EvaluationError(f"--batch must be at least 1, got {args.batch}")
        artifact = load_artifact(args.artifact)
        cfg = artifact.config
        images, labels = load_dataset(args.dataset, args.split, args.data_dir)
        if args.limit is not None:
            images, labels = images[: args.limit], labels[: args.limit]
        check_dataset_fits(cfg, args.dataset, images, labels)
        result = evaluate(artifact, images, labels, batch=args.batch, progress=not args.json and sys.stderr.isatty())
    except (ArtifactError, DataError, EvaluationError) as e:
        print(f"quant.evaluate: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # quant.golden.check_images: a pixel or shape the config cannot take
        print(f"quant.evaluate: {e}", file=sys.stderr)
        return 1
    result.pop("predictions")
    out = {
        "artifact": str(args.artifact),
        "config": cfg.name,
        "config_hash": cfg.hash,
        "dataset": args.dataset,
        "split": args.split,
        "limit": args.limit,
        **result,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    from bench.common import table

    print(f"artifact {args.artifact} (config {cfg.name}, hash {cfg.hash}); {args.dataset} {args.split} split, "
          f"{out['images']} images")
    print(f"accuracy: {100 * out['accuracy']:.2f} % ({out['correct']}/{out['images']})")
    print()
    print(table(["class", "images", "correct", "accuracy %"],
                [[c, v["images"], v["correct"], round(100 * v["accuracy"], 2)] for c, v in out["per_class"].items()]))
    print()
    print(table(["spiking layer", "firing rate %"],
                [[k, round(100 * v, 2)] for k, v in out["firing_rates"].items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
