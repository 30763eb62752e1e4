"""``python -m bench golden``: images/s of the integer golden model on one CPU core.

Scores the digits test split (360 images) with `quant.golden.forward` for digits-tiny, on a
random artifact (seed 0), the shipped ``artifacts/digits-tiny.npz`` when it exists, and any
``--artifact``; each with and without the spike record, as one batch of the whole split and
one image at a time (the latency a host would see per request). Target: the whole split in
under 1 s on one core.

Single core: the timing runs in a child process whose BLAS/OpenMP pools are limited to one
thread (OMP_NUM_THREADS etc. set before numpy is imported) and which is pinned to one CPU with
``sched_setaffinity`` where the OS has it. Integer matmul in numpy does not use BLAS anyway;
the pinning is what makes "one core" true.

``--smoke``: 32 images, one repeat; writes JSON only with an explicit ``--out-dir`` (CI runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from quant.artifact import SHIPPED_ARTIFACT

SHIPPED = SHIPPED_ARTIFACT
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
TARGET_S = 1.0


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity on this OS); BLAS threads limited to 1"


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in the pinned child process: load, warm up, time; returns rows as a dict."""
    import numpy as np

    from model.config import PRESETS
    from model.data import load_digits_split
    from quant import golden
    from quant.artifact import load_artifact, random_artifact

    pinning = _pin_one_core()
    images, _ = load_digits_split("test")
    images = images[: spec["images"]] if spec["images"] else images
    rows = []
    for label, source in spec["artifacts"]:
        art = random_artifact(PRESETS["digits-tiny"], seed=0) if source is None else load_artifact(source)
        if art.config.image_shape[:2] != images.shape[1:]:
            raise SystemExit(f"bench golden: {source} has config {art.config.name}, not an 8x8 digits config")
        golden.forward(art, images[:8])  # warm up (imports, allocator)
        full = golden.forward(art, images, record=True)
        lean = golden.forward(art, images, record=False)
        assert np.array_equal(full["logits"], lean["logits"]), "record=True and record=False disagree"
        for record in (False, True):
            t = _time(lambda: golden.forward(art, images, record=record), spec["repeat"])
            rows.append(_row(label, record, len(images), len(images), t))
        t = _time(lambda: [golden.forward(art, images[i : i + 1], record=False) for i in range(len(images))],
                  max(1, spec["repeat"] // 2))
        rows.append(_row(label, False, 1, len(images), t))
    return {"pinning": pinning, "threads": {k: os.environ.get(k) for k in THREAD_VARS}, "rows": rows}


def _row(label: str, record: bool, batch: int, n: int, times: list[float]) -> dict[str, Any]:
    best = min(times)
    return {"artifact": label, "record": record, "batch": batch, "images": n, "repeat": len(times),
            "best_s": best, "median_s": sorted(times)[len(times) // 2], "images_per_s": n / best,
            "us_per_image": 1e6 * best / n}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench golden", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--artifact", type=Path, action="append", default=[],
                   help="also time this artifact (an 8x8 digits config); repeatable")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per row; the best is reported")
    p.add_argument("--smoke", action="store_true", help="32 images, 1 repeat, no JSON unless --out-dir")
    p.add_argument("--out-dir", type=Path, default=None, help="where golden.json goes (default bench/results)")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args._worker:
        print(json.dumps(_worker(json.loads(args._worker))))
        return 0
    if args.repeat < 1:
        print(f"bench golden: --repeat must be at least 1, got {args.repeat}", file=sys.stderr)
        return 1
    for a in args.artifact:
        if not a.is_file():
            print(f"bench golden: {a}: no such artifact file", file=sys.stderr)
            return 1
    artifacts: list[tuple[str, str | None]] = [("random (seed 0)", None)]
    if SHIPPED.is_file():
        artifacts.append((str(SHIPPED.relative_to(SHIPPED.parent.parent)), str(SHIPPED)))
    artifacts += [(str(a), str(a.resolve())) for a in args.artifact]
    spec = {"images": 32 if args.smoke else 0, "repeat": 1 if args.smoke else args.repeat, "artifacts": artifacts}

    env = {**os.environ, **{k: "1" for k in THREAD_VARS}}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    r = subprocess.run([sys.executable, "-m", "bench.golden", "--_worker", json.dumps(spec)],
                       capture_output=True, text=True, env=env, cwd=root)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"bench golden: the timing process failed: {last}", file=sys.stderr)
        return 1
    res = json.loads(r.stdout)

    from bench.common import table, write_json

    rows = res["rows"]
    print(f"golden model, digits-tiny, digits test split ({rows[0]['images']} images), one core "
          f"({res['pinning']}; {', '.join(f'{k}=1' for k in THREAD_VARS)})")
    print(table(
        ["artifact", "record", "batch", "best s", "median s", "images/s", "us/image", f"split < {TARGET_S:g} s"],
        [[x["artifact"], "yes" if x["record"] else "no", x["batch"], round(x["best_s"], 4), round(x["median_s"], 4),
          round(x["images_per_s"]), round(x["us_per_image"], 1),
          "yes" if x["best_s"] * 360 / x["images"] < TARGET_S else "no"] for x in rows],
    ))
    out_dir = args.out_dir
    if out_dir is None and not args.smoke:
        from bench.common import RESULTS

        out_dir = RESULTS
    if out_dir is not None:
        path = write_json("golden-smoke" if args.smoke else "golden",
                          {"config": "digits-tiny", "dataset": "digits test split", "target_s": TARGET_S,
                           "single_core": {"pinning": res["pinning"], "threads": res["threads"]}, "rows": rows},
                          out_dir=out_dir)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
