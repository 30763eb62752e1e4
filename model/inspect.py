"""Look inside the integer network on one image: spike rasters, attention masks, logits.

``python -m model.inspect --artifact A --image N [--dataset digits] [--split test] [--out inspect/]``

Runs `quant.golden.forward` (the bit-exact integer model, not PyTorch) on image N of a data set
split and writes two PNGs into ``--out``:

* ``<stem>-<dataset>-<split>-<N>-overview.png``: the input image with its patch grid and token
  numbers, the summed logits (predicted and true class marked), the logits of every timestep, the
  firing rate of every spiking layer at every timestep, and per block the attention masks: the
  attention LIF's spikes ``bL.kv`` (one row per timestep, one column per channel) above the mask
  ``bL.attn`` = Q AND kv, drawn so that a query spike that kv let through (black) is told apart
  from one that kv blocked (orange).
* ``<stem>-<dataset>-<split>-<N>-raster.png``: the spike raster of every layer of
  `quant.golden.spike_layers` in network order. Each panel is one layer; its x axis is the T
  timesteps side by side (a blue gap between steps), inside a step one column per channel
  (D, or H for ``fc1``), its y axis one row per token (a single row for ``bL.kv``, which is per
  channel). Black is a spike.

It prints the true and predicted class, the logits and a table of per-layer firing rates for
that image (spikes / neurons over all timesteps, exact integers, and the rate at each step).

Every error a user can cause (a missing or corrupt artifact, an image index outside the split, a
data set whose image size or pixel depth is not the artifact's, an output file that exists
without ``--force``) ends the program with exit code 2 and one line ``error: ...``, before
anything is written.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from model.data import DATASETS, DataError, dataset_pixel_bits, load_dataset
from quant.artifact import Artifact, ArtifactError, atomic_write_bytes, load_artifact

__all__ = ["InspectError", "firing_rates", "rate_table", "draw_overview", "draw_raster", "output_paths", "main"]

PNG_DPI = 100
GAP_COLOR = "#9ecae1"  # the gap between timestep blocks
MASKED_COLOR = "#fdae6b"  # a query spike that the attention LIF (kv = 0) blocked


class InspectError(Exception):
    """The request cannot be served; the message says why and what would work."""


# Numbers ---------------------------------------------------------------------------------------

def firing_rates(cfg, rec: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per spiking layer of ONE image's record (batch axis removed): spikes, neurons, rate, rate per t.

    ``neurons`` counts every (timestep, token, channel) entry (every (timestep, channel) for
    ``bL.kv``); ``rate`` = spikes / neurons, ``per_t[t]`` the same at timestep t.
    """
    from quant.golden import spike_layers

    out = {}
    for k in spike_layers(cfg):
        a = rec[k]
        per_t = a.reshape(a.shape[0], -1)
        spikes = int(a.sum(dtype=np.int64))
        out[k] = {
            "shape": tuple(a.shape),
            "spikes": spikes,
            "neurons": int(a.size),
            "rate": spikes / a.size,
            "per_t": [float(r.mean()) for r in per_t],
        }
    return out


def rate_table(rates: dict[str, dict[str, Any]]) -> str:
    """The printed table: layer, shape [T, N, channels], spikes, neurons, rate, rate at each t."""
    from bench.common import table

    T = len(next(iter(rates.values()))["per_t"])
    headers = ["spiking layer", "shape", "spikes", "neurons", "rate"] + [f"t={t}" for t in range(T)]
    rows = [[k, "x".join(map(str, v["shape"])), v["spikes"], v["neurons"], f"{v['rate']:.4f}"]
            + [f"{r:.4f}" for r in v["per_t"]] for k, v in rates.items()]
    return table(headers, rows)


# Drawing ---------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI)
    _plt().close(fig)
    return buf.getvalue()


def _gap(width: int) -> int:
    return max(1, round(width / 16))


def _blocks(a: np.ndarray) -> np.ndarray:
    """[T, rows, W] -> float [rows, T*W + (T-1)*gap], the timesteps side by side, NaN in the gaps."""
    T, rows, W = a.shape
    g = _gap(W)
    out = np.full((rows, T * W + (T - 1) * g), np.nan)
    for t in range(T):
        out[:, t * (W + g) : t * (W + g) + W] = a[t]
    return out


def _block_axis(ax, T: int, W: int, labels: bool) -> None:
    g = _gap(W)
    ax.set_xticks([t * (W + g) + (W - 1) / 2 for t in range(T)])
    ax.set_xticklabels([f"t={t}" for t in range(T)] if labels else [])
    ax.tick_params(axis="x", length=0)


def _row_ticks(ax, rows: int) -> None:
    if rows == 1:
        ax.set_yticks([])
    else:
        ax.set_yticks([0, rows - 1])
        ax.tick_params(axis="y", labelsize=7, length=2)


def _cmap(colors: list[str]):
    from matplotlib.colors import ListedColormap

    return ListedColormap(colors).with_extremes(bad=GAP_COLOR)


def _layer_rows(a: np.ndarray) -> np.ndarray:
    """A layer's [T, N, W] record, or [T, W] (bL.kv) as [T, 1, W]."""
    return a[:, None, :] if a.ndim == 2 else a


def draw_raster(cfg, rec: dict[str, np.ndarray], rates: dict[str, dict[str, Any]], title: str) -> bytes:
    """PNG bytes: one panel per spiking layer, x = timestep blocks of channels, y = tokens."""
    from quant.golden import spike_layers

    plt = _plt()
    layers = spike_layers(cfg)
    N = cfg.tokens
    heights = [max(N, 6) if rec[k].ndim == 3 else max(2, N // 8) for k in layers]
    unit = min(0.09, 1.6 / max(N, 1))  # inches per token row: 16 tokens -> 1.4 in, 49 -> 1.6 in
    panel_h = [max(0.35, h * unit) for h in heights]
    fig_h = sum(panel_h) + 0.12 * len(layers) + 1.5
    widest = max(_blocks(_layer_rows(rec[k])).shape[1] for k in layers)
    fig_w = max(13.0, widest * 2.5 / PNG_DPI / 0.82)  # at least 2.5 pixels per channel column
    fig, axes = plt.subplots(len(layers), 1, figsize=(fig_w, fig_h),
                             gridspec_kw={"height_ratios": panel_h, "hspace": 0.12 + 0.15 * (N <= 16)},
                             squeeze=False)
    cmap = _cmap(["white", "black"])
    for i, (k, ax) in enumerate(zip(layers, axes[:, 0])):
        a = _layer_rows(rec[k])
        T, rows, W = a.shape
        ax.imshow(_blocks(a), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        _block_axis(ax, T, W, labels=i == len(layers) - 1 or i == 0)
        if i == 0:
            ax.xaxis.set_ticks_position("top")
        _row_ticks(ax, rows)
        kind = "per channel" if rows == 1 else f"{rows} tok x {W} ch"
        ax.set_ylabel(f"{k}\n{100 * rates[k]['rate']:.1f} %", rotation=0, ha="right", va="center", fontsize=9)
        ax.text(1.002, 0.5, kind, transform=ax.transAxes, fontsize=7, va="center", ha="left", color="0.35")
    axes[-1, 0].set_xlabel("timestep t; inside each block one column per channel (0 left); rows = tokens "
                           "(0 top, row-major over the patch grid); black = spike", fontsize=9)
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h, va="top")
    fig.subplots_adjust(left=0.1, right=0.92, top=1 - 0.9 / fig_h, bottom=0.55 / fig_h)
    return _png(fig)


def draw_overview(cfg, image: np.ndarray, label: int | None, rec: dict[str, np.ndarray],
                  rates: dict[str, dict[str, Any]], title: str, class_names: list[str] | None = None) -> bytes:
    """PNG bytes: input image, logits, logits per t, firing rates per t, attention masks per block."""
    from matplotlib.patches import Patch

    plt = _plt()
    T, N, D, C, L = cfg.timesteps, cfg.tokens, cfg.dim, cfg.classes, cfg.blocks
    names = class_names or [str(c) for c in range(C)]
    pred = int(rec["pred"])
    logits, logits_t = rec["logits"], rec["logits_t"]
    layers = list(rates)

    mask_h = max(1.3, min(3.0, N * 0.05))
    top_h = max(3.2, 0.22 * len(layers) + 0.8)
    fig_h = top_h + L * (mask_h + 0.9) + 1.6
    fig = plt.figure(figsize=(15, fig_h))
    outer = fig.add_gridspec(1 + L, 1, height_ratios=[top_h] + [mask_h + 0.9] * L, hspace=0.45,
                             top=1 - 1.0 / fig_h, bottom=0.75 / fig_h, left=0.06, right=0.98)
    top = outer[0].subgridspec(1, 4, width_ratios=[1, 1.3, 1.2, 1.3], wspace=0.45)

    # (c) the input image, its patch grid and token numbers
    ax = fig.add_subplot(top[0])
    img = image if image.ndim == 2 else image[..., 0]
    ax.imshow(img, cmap="gray", vmin=0, vmax=cfg.pixel_max, interpolation="nearest")
    gh, gw = cfg.grid
    p = cfg.patch
    for y in range(1, gh):
        ax.axhline(y * p - 0.5, color="tab:red", lw=0.5, alpha=0.6)
    for x in range(1, gw):
        ax.axvline(x * p - 0.5, color="tab:red", lw=0.5, alpha=0.6)
    if N <= 64:
        for n in range(N):
            gy, gx = divmod(n, gw)
            ax.text(gx * p - 0.5 + 0.12 * p, gy * p - 0.5 + 0.12 * p, str(n), color="tab:red",
                    fontsize=6 if N > 16 else 7, ha="left", va="top")
    ax.set_xticks([])
    ax.set_yticks([])
    true_txt = f"true {names[label]}" if label is not None else "true ?"
    ok = "" if label is None else ("  (correct)" if pred == label else "  (WRONG)")
    ax.set_title(f"input, tokens\n{true_txt}, predicted {names[pred]}{ok}", fontsize=9)

    # (c) logits summed over t
    ax = fig.add_subplot(top[1])
    colors = ["0.7"] * C
    colors[pred] = "tab:red" if label is not None and pred != label else "tab:blue"
    if label is not None:
        colors[label] = "tab:green" if pred == label else colors[label]
    ax.bar(range(C), logits, color=colors)
    if label is not None and label != pred:
        ax.bar([label], [logits[label]], color="none", edgecolor="tab:green", lw=2)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(C))
    ax.set_xticklabels(names, fontsize=7 if C <= 12 else 5, rotation=0 if C <= 12 else 90)
    ax.set_title("logits (sum over t)", fontsize=9)
    ax.legend(handles=[Patch(color="tab:blue" if label is None or label == pred else "tab:red", label="predicted"),
                       Patch(facecolor="tab:green" if label == pred else "none", edgecolor="tab:green", label="true")],
              fontsize=7, loc="best")
    ax.tick_params(labelsize=7)

    # logits of every timestep
    ax = fig.add_subplot(top[2])
    lim = max(1, int(np.abs(logits_t).max()))
    im = ax.imshow(logits_t.T, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    if C * T <= 200:
        for t in range(T):
            for c in range(C):
                v = int(logits_t[t, c])
                ax.text(t, c, str(v), ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 * lim else "black")
    ax.set_xticks(range(T))
    ax.set_xticklabels([f"t={t}" for t in range(T)], fontsize=7)
    ax.set_yticks(range(C))
    ax.set_yticklabels(names, fontsize=7 if C <= 12 else 5)
    ax.set_ylabel("class", fontsize=8)
    ax.set_title("logits of each timestep", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03).ax.tick_params(labelsize=6)

    # firing rate of every layer at every timestep
    ax = fig.add_subplot(top[3])
    r = np.array([rates[k]["per_t"] for k in layers])
    ax.imshow(r, cmap="viridis", vmin=0, vmax=max(0.05, float(r.max())), aspect="auto", interpolation="nearest")
    for i in range(len(layers)):
        for t in range(T):
            ax.text(t, i, f"{100 * r[i, t]:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if r[i, t] < 0.6 * max(0.05, r.max()) else "black")
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels([f"{k} ({100 * rates[k]['rate']:.1f})" for k in layers], fontsize=7)
    ax.set_xticks(range(T))
    ax.set_xticklabels([f"t={t}" for t in range(T)], fontsize=7)
    ax.set_title("firing rate % per timestep\n(layer, % over all t)", fontsize=9)

    # (b) attention masks, one block per row: kv strip above the Q AND kv mask
    mask_cmap = _cmap(["white", MASKED_COLOR, "black"])
    kv_cmap = _cmap(["white", "black"])
    for l in range(L):
        g = outer[1 + l].subgridspec(2, 1, height_ratios=[max(0.25, mask_h / max(N, 1) * 2.5), mask_h], hspace=0.08)
        q, kv, attn = rec[f"b{l}.q"], rec[f"b{l}.kv"], rec[f"b{l}.attn"]
        state = np.where(attn == 1, 2, np.where(q == 1, 1, 0))  # 2 passes, 1 blocked by kv, 0 no query spike
        ax0 = fig.add_subplot(g[0])
        ax0.imshow(_blocks(kv[:, None, :]), cmap=kv_cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        _block_axis(ax0, T, D, labels=True)
        ax0.xaxis.set_ticks_position("top")
        ax0.set_yticks([])
        ax0.set_ylabel(f"b{l}.kv", rotation=0, ha="right", va="center", fontsize=8)
        on = kv.sum(axis=1)
        ax0.set_title(f"block {l} attention: kv[t, c] (the attention LIF, per channel; channels on per t: "
                      f"{', '.join(map(str, on))} of {D}) above A = Q AND kv "
                      f"(A = 1 at {100 * rates[f'b{l}.attn']['rate']:.1f} % of (t, token, channel))", fontsize=9)
        ax1 = fig.add_subplot(g[1], sharex=ax0)
        ax1.imshow(_blocks(state), cmap=mask_cmap, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        ax1.tick_params(axis="x", labelbottom=False)
        _row_ticks(ax1, N)
        ax1.set_ylabel(f"b{l}.attn\ntoken", rotation=0, ha="right", va="center", fontsize=8)
    if L:
        fig.legend(handles=[Patch(color="black", label="A = 1 (query spike, kv on)"),
                            Patch(color=MASKED_COLOR, label="query spike blocked (kv off)"),
                            Patch(facecolor="white", edgecolor="0.5", label="no query spike"),
                            Patch(color=GAP_COLOR, label="gap between timesteps")],
                   fontsize=8, loc="lower left", ncol=4, frameon=False, bbox_to_anchor=(0.05, 0.0),
                   title="attention masks: inside each timestep block one column per channel (0 left), "
                   "one row per token (0 top)", title_fontsize=8)
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h, va="top")
    return _png(fig)


# CLI -------------------------------------------------------------------------------------------

def output_paths(out: Path, artifact_path: Path, dataset: str, split: str, index: int) -> tuple[Path, Path]:
    stem = f"{artifact_path.stem}-{dataset}-{split}-{index}"
    return out / f"{stem}-overview.png", out / f"{stem}-raster.png"


def _default_dataset(artifact: Artifact) -> str:
    named = artifact.info.get("dataset") if isinstance(artifact.info, dict) else None
    if named in DATASETS:
        return named
    return "digits" if artifact.config.image_shape[:2] == (8, 8) else "fashion-mnist"


def _check_fits(cfg, dataset: str, images: np.ndarray, labels: np.ndarray) -> None:
    from quant.evaluate import EvaluationError, check_dataset_fits

    try:
        check_dataset_fits(cfg, dataset, images, labels)
    except EvaluationError as e:
        raise InspectError(str(e)) from None
    if dataset_pixel_bits(dataset) != cfg.pixel_bits:
        raise InspectError(
            f"{dataset} pixels are {dataset_pixel_bits(dataset)}-bit but the artifact's config {cfg.name} has "
            f"pixel_bits={cfg.pixel_bits}; use an artifact trained for this data set"
        )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.inspect",
        description="Run the integer golden model on one image and draw what every spiking layer does: "
        "spike rasters over the timesteps, the attention masks, the input and the logits (PNGs), and "
        "print the per-layer firing rates.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--artifact", required=True, type=Path, help="artifact file (.npz) from quant.export")
    p.add_argument("--image", required=True, type=int, help="index of the image in the split (0-based)")
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="data set; None: the one named in the artifact's info, else digits for 8x8 "
                   "configs and fashion-mnist otherwise")
    p.add_argument("--split", default="test", choices=("test", "train"), help="which split")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder of IDX files (fashion-mnist defaults to /usr/share/datasets/fashion-mnist)")
    p.add_argument("--out", type=Path, default=Path("inspect"), help="folder for the PNGs")
    p.add_argument("--force", action="store_true", help="replace PNGs that already exist")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            raise InspectError(f"--out {args.out} exists and is not a folder")
        artifact = load_artifact(args.artifact)
        cfg = artifact.config
        dataset = args.dataset or _default_dataset(artifact)
        images, labels = load_dataset(dataset, args.split, args.data_dir)
        if not 0 <= args.image < len(images):
            raise InspectError(f"--image {args.image} is out of range: the {dataset} {args.split} split has "
                               f"{len(images)} images (0..{len(images) - 1})")
        image, label = images[args.image], int(labels[args.image])
        _check_fits(cfg, dataset, image[None], labels[args.image : args.image + 1])
        paths = output_paths(args.out, args.artifact, dataset, args.split, args.image)
        for path in paths:
            if path.exists() and not args.force:
                raise InspectError(f"{path} exists; pass --force to replace it")
        from quant.golden import forward

        full = forward(artifact, image[None], record=True)
    except (InspectError, ArtifactError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # quant.golden.check_images: a pixel or shape the config cannot take
        print(f"error: {e}", file=sys.stderr)
        return 2

    rec = {k: v[0] for k, v in full.items()}
    rates = firing_rates(cfg, rec)
    pred = int(rec["pred"])
    verdict = "correct" if pred == label else "wrong"
    print(f"artifact {args.artifact} (config {cfg.name}, hash {cfg.hash}); {dataset} {args.split} image {args.image}")
    print(f"class: true {label}, predicted {pred} ({verdict})")
    print("logits: " + " ".join(f"{c}:{int(v)}" for c, v in enumerate(rec["logits"])))
    print()
    print(rate_table(rates))
    title = (f"{args.artifact.name} ({cfg.name}): {dataset} {args.split} image {args.image}, "
             f"true {label}, predicted {pred} ({verdict})")
    try:
        overview = draw_overview(cfg, image, label, rec, rates, title)
        raster = draw_raster(cfg, rec, rates, title + " - spike raster")
        for path, data in zip(paths, (overview, raster)):
            atomic_write_bytes(path, data, overwrite=args.force)
    except (FileExistsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print()
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
