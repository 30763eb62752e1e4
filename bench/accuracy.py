"""``python -m bench accuracy``: float / QAT / golden integer / RTL-sampled accuracy per variant.

Digits-tiny variants (STF both): weight bits 2, 4, 8 at T = 4 and T = 1, 2, 4, 8 at 4-bit
weights (the 4-bit T = 4 variant serves both sweeps), trained by
`bench.train_variants.train_variant` (``model.train``'s loop and defaults, ``--epochs`` epochs,
one ``--seed``; with the same settings the ``stf`` bench's "both" seed-0 run is reused). Columns:

* **float**: the trained network with Brevitas' weight quantizer bypassed (weights ``W / s``
  unrounded, everything else unchanged; `bench.train_variants.float_accuracy`). The model has
  no other float mode: it trains in the folded integer form, so this is the only "same network
  without quantization" there is;
* **QAT**: the PyTorch training forward (``STFNet``) on the test split;
* **golden**: `quant.golden` on the exported integers, the whole test split, with the check that
  the QAT forward's integer logits equal the golden ones on every image;
* **RTL-sampled**: the first ``--rtl-images`` test images through the generated RTL in Verilator
  (``sim.network.rtl_forward``, HW preset ``--hw-config``), compared spike by spike with the
  golden model (``sim.network.check_images``, as ``bench sim`` does): images bit-exact of those
  run, and the RTL's accuracy on that sample.

Fashion-MNIST row: the fmnist-small artifact (``--fmnist-artifact``, default
``artifacts/fmnist-small.npz``) with the QAT and golden accuracies that ``quant.export`` measured
on the whole test split (its JSON beside the artifact), the float accuracy when the run folder
(``--fmnist-run``) is present, and ``--fmnist-rtl-images`` images through the RTL (default 0: skipped).

``--smoke``: weight bits 2 and 4 at T = 4, 2 epochs on 200 training images, 2 RTL images with
HW preset ``small``, no Fashion-MNIST row; runs in a temporary folder; writes only with
``--out-dir``. Exit status 1 when an RTL sample is not bit-exact or could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, report_missing, save_results, table

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench accuracy", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--weight-bits", default="2,4,8", help="weight widths swept at T = 4")
    ap.add_argument("--timesteps", default="1,2,4,8", help="timesteps swept at 4-bit weights")
    ap.add_argument("--epochs", type=int, default=20, help="training epochs per digits variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift-prob", type=float, default=0.1, help="model.train --shift-prob")
    ap.add_argument("--ema", type=float, default=0.995,
                    help="model.train --ema for the digits variants (the sweep's measured setting; the shipped recipe uses 0.999)")
    ap.add_argument("--train-subset", type=int, default=0, help="train on the first N digits training images (0: all)")
    ap.add_argument("--rtl-images", type=int, default=8, help="test images per variant through the RTL (0: none)")
    ap.add_argument("--hw-config", default="small", help="HW preset for the RTL sample")
    ap.add_argument("--fmnist-artifact", type=Path, default=ROOT / "artifacts" / "fmnist-small.npz")
    ap.add_argument("--fmnist-run", type=Path, default=ROOT / "runs" / "fmnist-small-token",
                    help="the fmnist-small run folder, for the float column (skipped when absent)")
    ap.add_argument("--fmnist-rtl-images", type=int, default=0,
                    help="Fashion-MNIST images through the RTL (0: none; the fmnist-small Verilator build takes minutes)")
    ap.add_argument("--runs-dir", type=Path, default=None,
                    help="where trained runs are cached (default runs/bench; smoke: a temporary folder)")
    ap.add_argument("--check-cache", action="store_true",
                    help="train and measure nothing: list the runs not yet trained in --runs-dir; exit 3 if there are any")
    ap.add_argument("--smoke", action="store_true", help="tiny CI run; writes files only with --out-dir")
    ap.add_argument("--out-dir", type=Path, default=None, help=f"where accuracy.json/.png go (default {RESULTS})")
    return ap


def rtl_sample(art, images: np.ndarray, labels: np.ndarray, hw_config: str, sim: str = "verilator") -> dict[str, Any]:
    """The images through the RTL, checked spike by spike against the golden model."""
    from hw.verilog import parse_hw_config
    from quant import golden
    from sim import runner
    from sim.network import check_images, rtl_forward, top_design

    runner.setup_verilator_env()
    why = runner.simulator_missing(sim)
    if why:
        return {"images": 0, "skipped": f"{sim}: {why}"}
    t0 = time.perf_counter()
    design = top_design(art, parse_hw_config(hw_config), sim)
    r = rtl_forward(design, art.config, images, seed=0, tag="bench-accuracy")
    if not r.passed:
        return {"images": len(images), "error": r.failure}
    bad = check_images(art, images, r, seed=0)
    gold = golden.forward(art, images, record=False)["pred"]
    return {"images": int(len(images)), "simulator": sim, "hw_config": hw_config, "bit_exact": int(len(images) - len(bad)),
            "first_mismatch": str(bad[0]) if bad else None, "rtl_accuracy": float(np.mean(r.cls == labels)),
            "golden_accuracy_on_sample": float(np.mean(gold == labels)),
            "class_agreement": float(np.mean(r.cls == gold)), "seconds": round(time.perf_counter() - t0, 1)}


def _rtl_or_error(art, images, labels, hw_config) -> dict[str, Any]:
    if len(images) == 0:
        return {"images": 0, "skipped": "no RTL images requested"}
    try:
        return rtl_sample(art, images, labels, hw_config)
    except Exception as e:  # a design this config cannot build is a result to report, not a crash
        return {"images": int(len(images)), "error": f"{type(e).__name__}: {e}"}


def digits_variants(args) -> list[tuple[int, int, Any]]:
    """(weight bits, T, config) of every digits variant: the weight-bit sweep at T 4, then T at 4 bits."""
    from model.config import PRESETS

    base = PRESETS["digits-tiny"].with_stf("both")
    wbs = [int(s) for s in args.weight_bits.split(",") if s.strip()]
    ts = [int(s) for s in args.timesteps.split(",") if s.strip()]
    variants = list(dict.fromkeys([(wb, base.timesteps) for wb in wbs] + [(4, t) for t in ts]))  # 4-bit T 4 once
    return [(wb, T, base if (wb, T) == (base.weight_bits, base.timesteps) else base.replace(
        name=f"{base.name}-w{wb}-t{T}", weight_bits=wb, timesteps=T)) for wb, T in variants]


def _training(args) -> dict[str, Any]:
    return {"epochs": args.epochs, "train_subset": args.train_subset, "shift_prob": args.shift_prob, "ema": args.ema}


def missing_runs(args, runs_dir: Path) -> list[str]:
    """The run folders (under ``runs_dir``) that `digits_rows` would have to train first."""
    from bench.train_variants import untrained_run

    names = (untrained_run(cfg, "digits", runs_dir, seed=args.seed, **_training(args))
             for _, _, cfg in digits_variants(args))
    return [n for n in names if n is not None]


def digits_rows(args, runs_dir: Path) -> list[dict[str, Any]]:
    from bench.train_variants import float_accuracy, qat_golden, train_variant
    from model.data import load_dataset

    x, y = load_dataset("digits", "test")
    rows = []
    for wb, T, cfg in digits_variants(args):
        run = train_variant(cfg, "digits", runs_dir, seed=args.seed, quiet=False, **_training(args))
        ev = qat_golden(run, x, y)
        row = {"dataset": "digits", "config": cfg.name, "config_hash": cfg.hash, "weight_bits": wb, "timesteps": T,
               "epochs": args.epochs, "seed": args.seed, "train_images": args.train_subset or 1437,
               "test_images": ev["test_images"], "train_seconds": run.train_seconds,
               "float_accuracy": float_accuracy(run.model, x, y), "qat_accuracy": ev["qat_accuracy"],
               "golden_accuracy": ev["golden_accuracy"], "qat_golden_logits_equal": ev["logits_equal"],
               "rtl": _rtl_or_error(run.artifact, x[: args.rtl_images], y[: args.rtl_images], args.hw_config)}
        print(f"  digits w{wb} T{T}: float {100 * row['float_accuracy']:.2f} %, QAT {100 * row['qat_accuracy']:.2f} %, "
              f"golden {100 * row['golden_accuracy']:.2f} %, RTL {_rtl_text(row['rtl'])}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def fmnist_row(args) -> dict[str, Any] | None:
    """The fmnist-small artifact's row, or None when there is no artifact."""
    from bench.train_variants import float_accuracy
    from model.data import DataError, load_dataset
    from quant.artifact import load_artifact

    if not args.fmnist_artifact.is_file():
        return None
    art = load_artifact(args.fmnist_artifact)
    summary_path = args.fmnist_artifact.with_suffix(".json")
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    cfg = art.config
    row: dict[str, Any] = {"dataset": "fashion-mnist", "config": cfg.name, "config_hash": cfg.hash,
                           "weight_bits": cfg.weight_bits, "timesteps": cfg.timesteps,
                           "epochs": art.info.get("epochs"), "seed": art.info.get("seed"),
                           "train_images": 60000, "test_images": summary.get("test_images"),
                           "train_seconds": art.info.get("train_seconds"),
                           "qat_accuracy": summary.get("qat_accuracy"), "golden_accuracy": summary.get("golden_accuracy"),
                           "qat_golden_logits_equal": summary.get("logits_equal"),
                           "source": f"{args.fmnist_artifact.name} and its .json (quant.export on the whole test split)"}
    try:
        x, y = load_dataset("fashion-mnist", "test")
    except DataError as e:
        row["float_accuracy"] = None
        row["rtl"] = {"images": 0, "skipped": str(e)}
        return row
    row["float_accuracy"] = None
    if (args.fmnist_run / "checkpoint.pt").is_file():
        from quant.export import load_run

        model, _ = load_run(args.fmnist_run)
        if model.cfg.hash == cfg.hash:
            row["float_accuracy"] = float_accuracy(model, x, y)
    row["rtl"] = _rtl_or_error(art, x[: args.fmnist_rtl_images], y[: args.fmnist_rtl_images], args.hw_config)
    return row


def _rtl_text(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return "skipped"
    if "error" in r:
        return "error"
    return f"{r['bit_exact']}/{r['images']} bit-exact, acc {100 * r['rtl_accuracy']:.1f} %"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def render(res: dict[str, Any]) -> str:
    rows = [[r["dataset"], r["config"], r["weight_bits"], r["timesteps"], r["epochs"], _pct(r["float_accuracy"]),
             _pct(r["qat_accuracy"]), _pct(r["golden_accuracy"]), "yes" if r["qat_golden_logits_equal"] else "NO",
             _rtl_text(r["rtl"])] for r in res["rows"]]
    return table(["dataset", "config", "weight bits", "T", "epochs", "float %", "QAT %", "golden %", "QAT = golden logits",
                  "RTL sample"], rows)


def plot(res: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quant.artifact import atomic_write_bytes

    dig = [r for r in res["rows"] if r["dataset"] == "digits"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, fixed, label in ((axes[0], "weight_bits", ("timesteps", 4), "weight bits (T = 4)"),
                                  (axes[1], "timesteps", ("weight_bits", 4), "timesteps T (4-bit weights)")):
        sel = sorted((r for r in dig if r[fixed[0]] == fixed[1]), key=lambda r: r[key])
        xs = [r[key] for r in sel]
        for col, mk in (("float_accuracy", "s"), ("qat_accuracy", "o"), ("golden_accuracy", "x")):
            ax.plot(xs, [100 * r[col] for r in sel], marker=mk, label=col.split("_")[0])
        ax.set_xticks(xs)
        ax.set_xlabel(label)
        ax.set_ylabel("digits test accuracy %")
        ax.legend()
    fig.suptitle(f"digits-tiny, STF both, {res['epochs']} epochs, seed {res['seed']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.weight_bits, args.timesteps, args.epochs, args.train_subset = "2,4", "4", 2, 200
        args.rtl_images, args.hw_config, args.fmnist_artifact = 2, "small", Path("/nonexistent/fmnist-small.npz")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        runs_dir = args.runs_dir or (Path(tmp) if args.smoke else ROOT / "runs" / "bench")
        if args.check_cache:
            return report_missing("accuracy", missing_runs(args, runs_dir), runs_dir)
        rows = digits_rows(args, runs_dir)
    fm = fmnist_row(args)
    if fm is not None:
        rows.append(fm)
    res = {"method": __doc__.split("\n\n", 1)[1], "epochs": args.epochs, "seed": args.seed,
           "shift_prob": args.shift_prob, "ema": args.ema, "train_subset": args.train_subset, "hw_config": args.hw_config,
           "smoke": bool(args.smoke), "wall_seconds": round(time.time() - t0, 1), "rows": rows}
    print(render(res))
    save_results("accuracy", res, args, plot)
    ok = all(r["rtl"].get("bit_exact") == r["rtl"]["images"] for r in rows if "skipped" not in r["rtl"])
    ok &= all(r["qat_golden_logits_equal"] is not False for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
