"""``python -m bench stf``: the STF ablation - off / TSPE / TF / both, several seeds, per data set.

Every variant is trained by `bench.train_variants.train_variant` (``model.train``'s own loop and
defaults; only ``--stf``, the epochs, the seed, the shift probability and, for Fashion-MNIST, a
training subset change), exported in memory with ``quant.export.model_to_artifact`` and scored
on the integer golden model (`quant.golden`). Per trained artifact:

* **accuracy**: integer accuracy of the artifact on the test split (or its first
  ``--test-subset`` images), computed by `int_logits` (the golden arithmetic in torch, checked
  logit for logit against `quant.golden` on the ``--golden-images``: "golden-exact"), and the
  QAT forward's accuracy, checked to give the same class on every image (it computes the same
  integers by construction);
* **spike-pattern diversity** (the golden model's spike record of the first
  ``--golden-images`` test images): every neuron (token x channel, per image) has a T-bit spike train; per layer we report
  the entropy in bits of the distribution of these T-bit patterns pooled over images and neurons
  (max T bits), the mean over neurons of the per-neuron pattern entropy across images, the
  number of distinct patterns (of 2^T) and the fraction of trains that are not constant
  (neither all-0 nor all-1);
* **firing rate** of every spiking layer (mean spike probability, same images);
* **FGSM** (the first ``--analysis-images`` test images): the gradient of the cross-entropy of the QAT model's float logits
  with respect to the input pixels, held as float tensors, flows through the straight-through
  roundings and the LIF surrogate gradient; the adversarial image is
  ``clip(x + k * sign(grad), 0, x_max)`` with an integer step ``k = round(eps * x_max)`` pixel
  levels, where ``x_max`` is the data set's largest pixel value (digits 16, Fashion-MNIST 255;
  both inside the config's ``pixel_bits`` range), so it is again a valid integer image of the
  data's range; it is scored on the golden model. All four
  modes use direct coding (the constant image embedding E at every step); ``off`` is plain
  direct coding, the baseline;
* **temporal sensitivity** (the analysis images): the artifact trained at T is run at T' != T by
  rewriting its config's ``timesteps``; the TSPE table has T rows: steps t < T use row t, steps
  t >= T reuse the last row T-1 (for ``off`` and ``tf`` all rows are equal anyway). Nothing else
  depends on T (logits are summed over T', the argmax needs no division).

Mean +- sample standard deviation (ddof=1) over the seeds. Runs are cached under ``--runs-dir``
(see bench.train_variants), so an interrupted bench restarts where it stopped.

``--smoke``: digits, 2 epochs, 1 seed, a 200-image training subset, 32 analysis images, all
four modes; runs in a temporary folder; writes JSON/PNG/Markdown only with ``--out-dir``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, report_missing, save_results, table

MODES = ("off", "tspe", "tf", "both")
CONFIG_OF = {"digits": "digits-tiny", "fashion-mnist": "fmnist-small"}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench stf", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--datasets", default="digits,fashion-mnist", help="comma-separated: digits, fashion-mnist")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated STF modes")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per mode (0 .. N-1)")
    ap.add_argument("--epochs", type=int, default=20, help="training epochs on digits")
    ap.add_argument("--fmnist-epochs", type=int, default=2, help="training epochs on Fashion-MNIST")
    ap.add_argument("--train-subset", type=int, default=3000,
                    help="Fashion-MNIST: train on the first N training images (0: all 60000)")
    ap.add_argument("--test-subset", type=int, default=1000,
                    help="Fashion-MNIST: score accuracy on the first N test images (0: all 10000)")
    ap.add_argument("--analysis-images", type=int, default=360,
                    help="digits test images for FGSM and T sensitivity (the split has 360)")
    ap.add_argument("--fmnist-analysis-images", type=int, default=200, help="--analysis-images for Fashion-MNIST")
    ap.add_argument("--golden-images", type=int, default=360,
                    help="test images run through the numpy golden model (spike record, diversity, rates, exactness check)")
    ap.add_argument("--digits-ema", type=float, default=0.995,
                    help="digits: model.train --ema (the ablation's measured setting; the shipped recipe uses 0.999)")
    ap.add_argument("--fmnist-ema", type=float, default=0.0,
                    help="Fashion-MNIST: model.train --ema (0: off; 0.995 averages over ~200 steps, "
                         "as many as the whole reduced budget has, so the exported weights would still be mostly the initial ones)")
    ap.add_argument("--fmnist-golden-images", type=int, default=100, help="--golden-images for Fashion-MNIST")
    ap.add_argument("--shift-prob", type=float, default=0.1, help="model.train --shift-prob")
    ap.add_argument("--eps", default="0.0625,0.125,0.25",
                    help="FGSM epsilons as fractions of the pixel range (rounded to whole pixel levels)")
    ap.add_argument("--t-infer", default="1,2,3,4,6,8", help="timesteps at inference for the T-sensitivity test")
    ap.add_argument("--runs-dir", type=Path, default=None,
                    help="where trained runs are cached (default runs/bench; smoke: a temporary folder)")
    ap.add_argument("--check-cache", action="store_true",
                    help="train and measure nothing: list the runs not yet trained in --runs-dir; exit 3 if there are any")
    ap.add_argument("--smoke", action="store_true", help="tiny CI run; writes files only with --out-dir")
    ap.add_argument("--out-dir", type=Path, default=None, help=f"where stf.json/.md/.png go (default {RESULTS})")
    return ap


# Measurements on one artifact ------------------------------------------------------------------

def pattern_stats(spikes: np.ndarray) -> dict[str, float]:
    """Diversity of the T-bit spike trains of one layer; ``spikes`` is [B, T, ...] of 0/1.

    Returns ``entropy_bits`` (pooled over images and neurons), ``neuron_entropy_bits`` (mean over
    neurons of the entropy across images), ``distinct`` patterns and ``nonconstant`` fraction.
    """
    s = np.asarray(spikes).astype(np.int64)
    B, T = s.shape[:2]
    s = s.reshape(B, T, -1)
    codes = np.zeros((B, s.shape[2]), np.int64)
    for t in range(T):
        codes |= s[:, t] << t
    K = 1 << T

    def entropy(counts: np.ndarray) -> np.ndarray:
        p = counts / counts.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0.0), axis=-1)

    pooled = np.bincount(codes.reshape(-1), minlength=K)
    n = codes.shape[1]
    per = np.bincount((np.arange(n)[None, :] * K + codes).reshape(-1), minlength=n * K).reshape(n, K)
    return {"entropy_bits": float(entropy(pooled)), "neuron_entropy_bits": float(np.mean(entropy(per))),
            "distinct": int(np.count_nonzero(pooled)),
            "nonconstant": float(np.mean((codes != 0) & (codes != K - 1)))}


def spike_stats(art, images: np.ndarray) -> dict[str, dict[str, float]]:
    """Per spiking layer: firing rate and `pattern_stats` from the golden model's record."""
    from quant import golden

    rec = golden.forward(art, images, record=True)
    return {k: {"rate": float(rec[k].mean()), **pattern_stats(rec[k])} for k in golden.spike_layers(art.config)}


def fgsm_images(model, images: np.ndarray, labels: np.ndarray, steps: list[int], x_max: int,
                batch: int = 256) -> dict[int, np.ndarray]:
    """Integer adversarial images per step k (pixel levels): clip(x + k * sign(dL/dx), 0, x_max)."""
    import torch
    import torch.nn.functional as F

    pmax = x_max
    signs = []
    for i in range(0, len(images), batch):
        x = torch.tensor(images[i : i + batch], dtype=torch.float32, requires_grad=True)
        logits, _ = model(x)
        loss = F.cross_entropy(logits, torch.from_numpy(labels[i : i + batch].astype(np.int64)))
        (g,) = torch.autograd.grad(loss, x)
        signs.append(torch.sign(g).numpy().astype(np.int64))
    sign = np.concatenate(signs) if signs else np.zeros(images.shape, np.int64)
    return {k: np.clip(images.astype(np.int64) + k * sign, 0, pmax) for k in steps}


def at_timesteps(art, T: int):
    """The artifact run with T timesteps: TSPE rows t >= the trained T reuse the last row."""
    from quant.artifact import Artifact

    cfg = art.config
    pos = art.params["enc.pos"]
    rows = np.stack([pos[min(t, cfg.timesteps - 1)] for t in range(T)])
    info = {**art.info, "timesteps_at_inference": T, "trained_timesteps": cfg.timesteps}
    return Artifact(cfg.replace(timesteps=T), {**art.params, "enc.pos": rows}, info)


def int_logits(art, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Integer logits of `art` from `model.network.run` on its integers: the golden model's
    arithmetic in torch (bit-exact, float32 holds every integer exactly; `measure` checks it
    against `quant.golden` on the golden images) and about 20x faster than the numpy golden
    model on fmnist-small, which makes FGSM and T sweeps over hundreds of images affordable."""
    import torch

    from model.network import run as net_run

    P = {k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in art.params.items()}
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            r = net_run(art.config, P, torch.from_numpy(np.asarray(images[i : i + batch], np.int64)))
            out.append(r["logits"].to(torch.float64).numpy().astype(np.int64))
    return np.concatenate(out) if out else np.zeros((0, art.config.classes), np.int64)


def _acc(art, images, labels) -> float:
    from quant.contract import argmax_lowest

    return float(np.mean(argmax_lowest(int_logits(art, images)) == labels))


def measure(run, x_test, y_test, x_gold, x_an, y_an, eps: list[float], t_infer: list[int], x_max: int) -> dict[str, Any]:
    """Every measurement of the module doc on one trained run.

    Integer accuracies use `int_logits`; the golden model runs on ``x_gold`` (spike record for
    diversity and rates) and its logits are compared with `int_logits` there and, for every T'
    of the sweep, on the first 32 of them.
    """
    import torch

    from quant import golden
    from quant.contract import argmax_lowest

    art = run.artifact
    logits = int_logits(art, x_test)
    with torch.no_grad():
        qat = np.concatenate([run.model(torch.from_numpy(x_test[i : i + 500].astype(np.int64)))[0].argmax(-1).numpy()
                              for i in range(0, len(x_test), 500)])
    rec = golden.forward(art, x_gold, record=True)
    gold_equal = bool(np.array_equal(rec["logits"], logits[: len(x_gold)]))
    stats = {k: {"rate": float(rec[k].mean()), **pattern_stats(rec[k])} for k in golden.spike_layers(art.config)}
    steps = sorted({int(round(e * x_max)) for e in eps})
    adv = fgsm_images(run.model, x_an, y_an, steps, x_max)
    temporal, t_equal = {}, True
    for T in t_infer:
        aT = at_timesteps(art, T)
        temporal[str(T)] = _acc(aT, x_an, y_an)
        t_equal &= bool(np.array_equal(golden.forward(aT, x_gold[:32], record=False)["logits"], int_logits(aT, x_gold[:32])))
    pred = argmax_lowest(logits)
    return {
        "seed": run.seed, "train_seconds": run.train_seconds, "reused_run": run.reused, "run": run.run_dir.name,
        "golden_accuracy": float(np.mean(pred == y_test)), "qat_accuracy": float(np.mean(qat == y_test)),
        "qat_equals_integer": bool(np.array_equal(qat, pred)), "golden_logits_equal": gold_equal,
        "golden_checked_images": int(len(x_gold)), "temporal_golden_equal": t_equal, "test_images": int(len(x_test)),
        "layers": stats,
        "fgsm": {"clean": _acc(art, x_an, y_an), **{str(k): _acc(art, adv[k], y_an) for k in steps}},
        "temporal": temporal,
    }


# Aggregation ------------------------------------------------------------------------------------

def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every scalar of `measure`."""
    layers = list(runs[0]["layers"])
    out: dict[str, Any] = {
        "golden_accuracy": _ms([r["golden_accuracy"] for r in runs]),
        "qat_accuracy": _ms([r["qat_accuracy"] for r in runs]),
        "logits_equal_all": all(r["golden_logits_equal"] and r["qat_equals_integer"] and r["temporal_golden_equal"]
                                for r in runs),
        "train_seconds": _ms([r["train_seconds"] for r in runs]),
        "layers": {k: {m: _ms([r["layers"][k][m] for r in runs]) for m in runs[0]["layers"][k]} for k in layers},
        "mean_rate": _ms([np.mean([r["layers"][k]["rate"] for k in layers]) for r in runs]),
        "mean_neuron_entropy_bits": _ms([np.mean([r["layers"][k]["neuron_entropy_bits"] for k in layers]) for r in runs]),
        "mean_entropy_bits": _ms([np.mean([r["layers"][k]["entropy_bits"] for k in layers]) for r in runs]),
        "fgsm": {k: _ms([r["fgsm"][k] for r in runs]) for k in runs[0]["fgsm"]},
        "temporal": {k: _ms([r["temporal"][k] for r in runs]) for k in runs[0]["temporal"]},
    }
    return out


def _pm(d: dict[str, float], scale: float = 100.0, nd: int = 2) -> str:
    return f"{scale * d['mean']:.{nd}f} ± {scale * d['std']:.{nd}f}"


def render(res: dict[str, Any]) -> str:
    """The Markdown tables of a result (also printed)."""
    parts = []
    for ds, d in res["datasets"].items():
        b = d["budget"]
        parts.append(f"### {ds} ({b['config']}; {b['epochs']} epochs, train images {b['train_images']}, "
                     f"test images {b['test_images']}, golden-model images {b['golden_images']}, analysis images "
                     f"{b['analysis_images']}, seeds {b['seeds']}, shift prob {b['shift_prob']:g}, EMA {b.get('ema')})\n")
        modes = list(d["modes"])
        rows = []
        for m in modes:
            a = d["modes"][m]["aggregate"]
            L = a["layers"]
            rows.append([m, _pm(a["golden_accuracy"]), _pm(a["qat_accuracy"]), "yes" if a["logits_equal_all"] else "NO",
                         _pm(L["enc"]["entropy_bits"], 1, 3), _pm(L["enc"]["neuron_entropy_bits"], 1, 3),
                         f"{L['enc']['distinct']['mean']:.1f}", _pm(L["enc"]["nonconstant"], 100, 1),
                         _pm(a["mean_neuron_entropy_bits"], 1, 3), _pm(L["enc"]["rate"], 100, 1), _pm(a["mean_rate"], 100, 1),
                         f"{a['train_seconds']['mean']:.0f}"])
        parts.append(table(["stf", "integer acc %", "QAT acc %", "golden-exact", "enc pattern H (bits)",
                            "enc per-neuron H", "enc distinct", "enc non-constant %", "all-layer per-neuron H",
                            "enc rate %", "mean rate %", "train s"], rows))
        layers = list(d["modes"][modes[0]]["aggregate"]["layers"])
        parts.append("\nFiring rate % per layer (mean over seeds):\n")
        parts.append(table(["stf", *layers], [[m, *[f"{100 * d['modes'][m]['aggregate']['layers'][k]['rate']['mean']:.1f}"
                                                    for k in layers]] for m in modes]))
        parts.append("\nPer-neuron pattern entropy (bits, of T) per layer (mean over seeds):\n")
        parts.append(table(["stf", *layers], [[m, *[f"{d['modes'][m]['aggregate']['layers'][k]['neuron_entropy_bits']['mean']:.3f}"
                                                    for k in layers]] for m in modes]))
        keys = list(d["modes"][modes[0]]["aggregate"]["fgsm"])
        pmax = b["pixel_max"]
        hdr = ["stf"] + ["clean" if k == "clean" else f"k={k} ({int(k) / pmax:.3f})" for k in keys]
        parts.append(f"\nFGSM: golden accuracy % under an integer step of k pixel levels (eps = k / {pmax}):\n")
        parts.append(table(hdr, [[m, *[_pm(d["modes"][m]["aggregate"]["fgsm"][k]) for k in keys]] for m in modes]))
        tk = list(d["modes"][modes[0]]["aggregate"]["temporal"])
        parts.append(f"\nTemporal sensitivity: golden accuracy % at T' timesteps (trained at T = {b['timesteps']}; "
                     "TSPE rows beyond T reuse the last row):\n")
        parts.append(table(["stf"] + [f"T'={t}" for t in tk],
                           [[m, *[_pm(d["modes"][m]["aggregate"]["temporal"][t]) for t in tk]] for m in modes]))
        parts.append("")
    return "\n".join(parts)


def plot(res: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quant.artifact import atomic_write_bytes

    dss = list(res["datasets"])
    fig, axes = plt.subplots(len(dss), 4, figsize=(16, 3.6 * len(dss)), squeeze=False)
    for row, ds in zip(axes, dss):
        d = res["datasets"][ds]
        modes = list(d["modes"])
        A = {m: d["modes"][m]["aggregate"] for m in modes}
        xs = np.arange(len(modes))
        row[0].bar(xs, [100 * A[m]["golden_accuracy"]["mean"] for m in modes],
                   yerr=[100 * A[m]["golden_accuracy"]["std"] for m in modes], capsize=4, color="tab:blue")
        lo = min(100 * (A[m]["golden_accuracy"]["mean"] - A[m]["golden_accuracy"]["std"]) for m in modes)
        row[0].set_ylim(max(0, lo - 3), 100)
        row[0].set_xticks(xs, modes)
        row[0].set_ylabel("golden test accuracy %")
        row[0].set_title(f"{ds}: accuracy")
        layers = list(A[modes[0]]["layers"])
        w = 0.8 / len(modes)
        for i, m in enumerate(modes):
            row[1].bar(np.arange(len(layers)) + i * w, [A[m]["layers"][k]["neuron_entropy_bits"]["mean"] for k in layers],
                       w, label=m)
        row[1].set_xticks(np.arange(len(layers)) + 0.4 - w / 2, layers, rotation=60, fontsize=7)
        row[1].set_ylabel("per-neuron pattern entropy (bits)")
        row[1].set_title("spike-pattern diversity")
        row[1].legend(fontsize=7)
        keys = list(A[modes[0]]["fgsm"])
        ks = [0 if k == "clean" else int(k) for k in keys]
        for m in modes:
            row[2].errorbar(ks, [100 * A[m]["fgsm"][k]["mean"] for k in keys], yerr=[100 * A[m]["fgsm"][k]["std"] for k in keys],
                            marker="o", capsize=3, label=m)
        row[2].set_xlabel(f"FGSM step (pixel levels of {d['budget']['pixel_max']})")
        row[2].set_ylabel("golden accuracy %")
        row[2].set_title("FGSM robustness")
        row[2].legend(fontsize=7)
        tk = list(A[modes[0]]["temporal"])
        for m in modes:
            row[3].errorbar([int(t) for t in tk], [100 * A[m]["temporal"][t]["mean"] for t in tk],
                            yerr=[100 * A[m]["temporal"][t]["std"] for t in tk], marker="o", capsize=3, label=m)
        row[3].axvline(d["budget"]["timesteps"], color="grey", ls=":")
        row[3].set_xlabel("timesteps at inference T'")
        row[3].set_ylabel("golden accuracy %")
        row[3].set_title("temporal sensitivity")
        row[3].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), overwrite=True)


# Main ---------------------------------------------------------------------------------------------

def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"bench stf: {name} must be comma-separated integers, got {text!r}") from None


def _training(args, ds: str) -> dict[str, Any]:
    """The `train_variant` keywords that a data set's runs share (all but config and seed)."""
    fm = ds == "fashion-mnist"
    return {"epochs": args.fmnist_epochs if fm else args.epochs,
            "train_subset": args.train_subset if (fm or args.smoke) else 0,
            "test_subset": args.test_subset if fm else 0, "shift_prob": args.shift_prob,
            "ema": args.fmnist_ema if fm else args.digits_ema}


def _selection(args) -> tuple[list[str], list[str]]:
    """The data sets and STF modes asked for, checked (``--seeds`` too)."""
    datasets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    modes = [s.strip() for s in args.modes.split(",") if s.strip()]
    for ds in datasets:
        if ds not in CONFIG_OF:
            raise SystemExit(f"bench stf: unknown dataset {ds!r}; choose from {', '.join(CONFIG_OF)}")
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"bench stf: unknown STF mode {m!r}; choose from {', '.join(MODES)}")
    if args.seeds < 1:
        raise SystemExit(f"bench stf: --seeds must be at least 1, got {args.seeds}")
    return datasets, modes


def missing_runs(args, runs_dir: Path) -> list[str]:
    """The run folders (under ``runs_dir``) that `run` would have to train first."""
    from bench.train_variants import untrained_run
    from model.config import PRESETS

    datasets, modes = _selection(args)
    names = (untrained_run(PRESETS[CONFIG_OF[ds]].with_stf(m), ds, runs_dir, seed=seed, **_training(args, ds))
             for ds in datasets for m in modes for seed in range(args.seeds))
    return [n for n in names if n is not None]


def run(args, runs_dir: Path) -> dict[str, Any]:
    from bench.train_variants import train_variant
    from model.config import PRESETS
    from model.data import load_dataset

    datasets, modes = _selection(args)
    try:
        eps = [float(e) for e in args.eps.split(",") if e.strip()]
    except ValueError:
        raise SystemExit(f"bench stf: --eps must be comma-separated numbers, got {args.eps!r}") from None
    t_infer = _ints(args.t_infer, "--t-infer")
    res: dict[str, Any] = {"method": __doc__.split("\n\n", 1)[1], "datasets": {}}
    for ds in datasets:
        base = PRESETS[CONFIG_OF[ds]]
        fm = ds == "fashion-mnist"
        kw = _training(args, ds)
        epochs, train_subset, test_subset = kw["epochs"], kw["train_subset"], kw["test_subset"]
        x_test, y_test = load_dataset(ds, "test")
        x_max = int(x_test.max())  # digits 16, Fashion-MNIST 255
        x_train_n = len(load_dataset(ds, "train")[0])
        if test_subset:
            x_test, y_test = x_test[:test_subset], y_test[:test_subset]
        n_an = args.fmnist_analysis_images if fm else args.analysis_images
        x_an, y_an = x_test[:n_an], y_test[:n_an]
        x_gold = x_test[: args.fmnist_golden_images if fm else args.golden_images]
        budget = {"config": base.name, "epochs": epochs, "train_images": train_subset or x_train_n,
                  "test_images": len(x_test), "analysis_images": len(x_an), "golden_images": len(x_gold),
                  "seeds": list(range(args.seeds)),
                  "shift_prob": args.shift_prob, "ema": kw["ema"],
                  "timesteps": base.timesteps, "pixel_max": x_max,
                  "eps": eps, "t_infer": t_infer}
        entry: dict[str, Any] = {"budget": budget, "modes": {}}
        t0 = time.time()
        for m in modes:
            per_seed = []
            for seed in range(args.seeds):
                tr = train_variant(base.with_stf(m), ds, runs_dir, seed=seed, quiet=False, **kw)
                r = measure(tr, x_test, y_test, x_gold, x_an, y_an, eps, t_infer, x_max)
                per_seed.append(r)
                print(f"  {ds} stf={m} seed {seed}: golden {100 * r['golden_accuracy']:.2f} %, QAT "
                      f"{100 * r['qat_accuracy']:.2f} %, golden-exact {r['golden_logits_equal']}, train {r['train_seconds']:.0f} s",
                      file=sys.stderr, flush=True)
            entry["modes"][m] = {"runs": per_seed, "aggregate": aggregate(per_seed)}
        budget["wall_seconds"] = round(time.time() - t0, 1)
        res["datasets"][ds] = entry
    return res


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.datasets, args.seeds, args.epochs, args.train_subset, args.analysis_images = "digits", 1, 2, 200, 32
        args.golden_images = 32
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-stf-") as tmp:
        runs_dir = args.runs_dir or (Path(tmp) if args.smoke else Path(__file__).resolve().parent.parent / "runs" / "bench")
        if args.check_cache:
            return report_missing("stf", missing_runs(args, runs_dir), runs_dir)
        res = run(args, runs_dir)
    res["smoke"] = bool(args.smoke)
    md = render(res)
    print(md)

    def plot_and_md(r, png: Path) -> None:
        plot(r, png)
        from quant.artifact import atomic_write_bytes

        atomic_write_bytes(png.with_suffix(".md"), (f"# STF ablation (`python -m bench stf`)\n\n{md}\n").encode(),
                           overwrite=True)

    save_results("stf", res, args, plot_and_md)
    return 0 if all(a["aggregate"]["logits_equal_all"] for d in res["datasets"].values() for a in d["modes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
