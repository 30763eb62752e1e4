"""``python -m bench cpu``: images/s on the CPU (golden numpy, PyTorch) beside the RTL's figure.

The digits test images go through, at batch 1 (one image per call, the latency a request sees)
and batch 256 (one call for 256 images):

* ``golden``: `quant.golden.forward(artifact, images, record=False)`, numpy int64;
* ``torch run``: `model.network.run(cfg, P, images)`, the PyTorch QAT forward, with ``P`` the
  artifact's integers as float32 tensors (what `STFNet.forward` computes after
  `STFNet.integer_params`); its logits are checked equal to the golden model's;
* ``torch STFNet``: `STFNet.forward` of a freshly initialised `STFNet` of the same config,
  i.e. the QAT forward including the Brevitas weight quantisation and the folding into integers
  on every call. No training checkpoint is shipped (only the exported artifact), so its weights
  are not the trained ones: a timing row only (the dense torch ops do not depend on the values).

There is no separate float forward: `STFNet` trains in the folded integer parametrization and its
forward *is* the integer network in float tensors (docs/training.md; `model/network.py`), so the
QAT forward is the float model here and none is invented.

All rows run in this process with one thread (``torch.set_num_threads(1)``, BLAS/OpenMP pools
limited to 1 before numpy/torch are imported when run as ``python -m bench cpu``), interleaved
row by row for ``--repeat`` rounds, best time reported. The machine is shared, so absolute
times are noisy; the ratios between rows, measured side by side in one run, are the robust part.

The RTL figure (images/s and microseconds per image, event-driven, at the Fmax it names) is read
from ``bench/results/latency.json`` when present (``python -m bench latency``); the ratio
"PyTorch STFNet batch-1 latency / RTL latency" has the goal >= 10.

``--smoke``: 8 images at batch 1, a batch of 16, one round; writes JSON only with ``--out-dir``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import RESULTS, save_results, table  # noqa: E402
from quant.artifact import SHIPPED_ARTIFACT

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = SHIPPED_ARTIFACT
GOAL_RATIO = 10.0
FLOAT_FORWARD = ("none: STFNet has no separate float forward; its QAT forward (the integer network in float "
                 "tensors) is the float model")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench cpu", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--artifact", default=str(SHIPPED), help="artifact .npz (an 8x8 digits config)")
    ap.add_argument("--single", type=int, default=64, help="images timed one at a time (batch 1)")
    ap.add_argument("--batch", type=int, default=256, help="images of the batched call")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (rows interleaved); the best is reported")
    ap.add_argument("--latency-json", default=str(RESULTS / "latency.json"), help="bench latency's JSON (RTL figure)")
    ap.add_argument("--smoke", action="store_true", help="8 single images, batch 16, 1 round; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where cpu.json goes (default {RESULTS})")
    return ap


def rtl_figure(path: Path) -> dict[str, Any] | None:
    """Event-driven RTL latency from bench latency's JSON, or None."""
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        v = d["variants"]["event_driven"]
        return {"source": str(path.relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path),
                "hw_config": v["hw_config"], "fmax_mhz": d["fmax_mhz"], "fmax_source": d["fmax_source"],
                "cycles_per_image": v["cycles_mean"], "us_per_image": v["us_per_image"],
                "images_per_s": v["images_per_s"], "images": d["images"]}
    except (ValueError, KeyError, TypeError):
        return None


def run(args) -> dict[str, Any]:
    import torch

    from model.data import load_dataset
    from model.network import STFNet
    from model.network import run as torch_run
    from quant import golden
    from quant.artifact import load_artifact

    torch.set_num_threads(1)
    art = load_artifact(args.artifact)
    cfg = art.config
    x, _ = load_dataset("digits", "test")
    if cfg.image_shape[:2] != x.shape[1:]:
        raise SystemExit(f"bench cpu: {args.artifact} has config {cfg.name}, not an 8x8 digits config")
    n_single = min(args.single, len(x))
    n_batch = min(args.batch, len(x))
    single, batch = x[:n_single], x[:n_batch]
    P = {k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in art.params.items()}
    tb = torch.tensor(batch)
    ts = [torch.tensor(single[i:i + 1]) for i in range(n_single)]
    net = STFNet(cfg).eval()

    # exactness of the torch QAT forward on these images (the trained network's integers)
    with torch.no_grad():
        t_logits = torch_run(cfg, P, tb)["logits"].numpy().astype(np.int64)
    g_logits = golden.forward(art, batch, record=False)["logits"]
    exact = bool(np.array_equal(t_logits, g_logits))

    def g1():
        for i in range(n_single):
            golden.forward(art, single[i:i + 1], record=False)

    def gb():
        golden.forward(art, batch, record=False)

    def r1():
        with torch.no_grad():
            for t in ts:
                torch_run(cfg, P, t)

    def rb():
        with torch.no_grad():
            torch_run(cfg, P, tb)

    def n1():
        with torch.no_grad():
            for t in ts:
                net(t)

    def nb():
        with torch.no_grad():
            net(tb)

    rows_spec: list[tuple[str, int, int, Callable[[], None], str]] = [
        ("golden (numpy)", 1, n_single, g1, "quant.golden.forward, record=False"),
        ("golden (numpy)", n_batch, n_batch, gb, "quant.golden.forward, record=False"),
        ("torch run (QAT forward, artifact integers)", 1, n_single, r1, "model.network.run, no_grad"),
        ("torch run (QAT forward, artifact integers)", n_batch, n_batch, rb, "model.network.run, no_grad"),
        ("torch STFNet.forward (QAT, fresh weights)", 1, n_single, n1, "STFNet(cfg).forward, no_grad"),
        ("torch STFNet.forward (QAT, fresh weights)", n_batch, n_batch, nb, "STFNet(cfg).forward, no_grad"),
    ]
    for _, _, _, fn, _ in rows_spec:  # warm up
        fn()
    times: list[list[float]] = [[] for _ in rows_spec]
    for _ in range(args.repeat):
        for i, (_, _, _, fn, _) in enumerate(rows_spec):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    rows = []
    for (engine, bsz, n, _, what), t in zip(rows_spec, times):
        best = min(t)
        rows.append({"engine": engine, "call": what, "batch": bsz, "images": n, "repeat": len(t), "best_s": best,
                     "median_s": sorted(t)[len(t) // 2], "images_per_s": n / best, "us_per_image": 1e6 * best / n})
    rtl = rtl_figure(Path(args.latency_json))
    ref = next(r for r in rows if r["engine"].startswith("torch STFNet") and r["batch"] == 1)
    ratio = ref["us_per_image"] / rtl["us_per_image"] if rtl else None
    return {
        "artifact": str(Path(args.artifact).resolve().relative_to(ROOT)) if Path(args.artifact).resolve().is_relative_to(ROOT)
        else str(args.artifact),
        "config": cfg.name, "dataset": "digits test split",
        "threads": {"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")},
        "torch_version": torch.__version__, "torch_logits_equal_golden": exact,
        "float_forward": FLOAT_FORWARD, "rows": rows, "rtl": rtl,
        "rtl_vs_pytorch_batch1": ratio, "goal_ratio": GOAL_RATIO,
        "goal_met": (ratio >= GOAL_RATIO) if ratio is not None else None,
        "note": "one process, one thread, rows interleaved per round, best of rounds; shared machine: compare ratios",
    }


def report(res: dict[str, Any]) -> str:
    lines = [f"CPU inference, {res['config']} ({res['artifact']}), digits test images, one thread "
             f"(torch {res['torch_version']}); rows interleaved, best of {res['rows'][0]['repeat']}",
             table(["engine", "batch", "images", "best s", "images/s", "us/image"],
                   [[r["engine"], r["batch"], r["images"], round(r["best_s"], 4), round(r["images_per_s"]),
                     f"{r['us_per_image']:.1f}"] for r in res["rows"]])]
    rtl = res["rtl"]
    if rtl:
        lines.append(table(["engine", "batch", "images", "cycles/image", "images/s", "us/image"],
                           [[f"RTL event-driven @ {rtl['fmax_mhz']:.4g} MHz", 1, rtl["images"],
                             round(rtl["cycles_per_image"], 1), round(rtl["images_per_s"]),
                             round(rtl["us_per_image"], 2)]]))
        lines.append(f"RTL Fmax from: {rtl['fmax_source']} (via {rtl['source']})")
        lines.append(f"PyTorch STFNet batch-1 latency / RTL latency = {res['rtl_vs_pytorch_batch1']:.1f}x "
                     f"(goal >= {res['goal_ratio']:g}x: {'met' if res['goal_met'] else 'NOT met'})")
    else:
        lines.append("RTL figure: no bench/results/latency.json (run python -m bench latency first)")
    lines.append(f"torch QAT forward logits equal the golden model's: {'yes' if res['torch_logits_equal_golden'] else 'NO'}")
    lines.append(f"float forward: {res['float_forward']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.single, args.batch, args.repeat = 8, 16, 1
    if min(args.single, args.batch, args.repeat) < 1:
        print("bench cpu: --single, --batch and --repeat must be at least 1", file=sys.stderr)
        return 1
    if not Path(args.artifact).is_file():
        print(f"bench cpu: artifact {args.artifact} not found; export one with python -m quant.export", file=sys.stderr)
        return 2
    res = run(args)
    print(report(res))
    save_results("cpu", res, args, plot)
    return 0 if res["torch_logits_equal_golden"] else 1


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['engine'].split(' (')[0]}\nbatch {r['batch']}" for r in res["rows"]]
    vals = [r["images_per_s"] for r in res["rows"]]
    colors = ["tab:blue" if r["batch"] == 1 else "tab:orange" for r in res["rows"]]
    if res["rtl"]:
        labels.append(f"RTL event-driven\n@ {res['rtl']['fmax_mhz']:.4g} MHz")
        vals.append(res["rtl"]["images_per_s"])
        colors.append("tab:green")
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(vals)), vals, color=colors)
    ax.set_xticks(range(len(vals)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("images/s (log)")
    ax.set_title(f"{res['config']}: CPU (one thread) vs RTL at Fmax")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
