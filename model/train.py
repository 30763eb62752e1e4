"""Train the STF spiking transformer with quantization-aware training: ``python -m model.train``.

The training forward is the integer network itself (`model.network.run`), so the accuracy
printed here is the accuracy of the exported artifact (up to the float-vs-integer argmax, which
the per-tensor head scale makes equal). One run folder holds:

* ``checkpoint.pt``: written atomically after every epoch (temporary file + rename) and read
  with ``torch.load(weights_only=True)``: the config as JSON, model and optimizer state, the
  number of finished epochs, the metrics so far and the RNG state, so ``--resume`` continues
  after an interruption and loses at most the epoch in progress;
* ``metrics.json`` (per-epoch loss, accuracies, firing rates, seconds) and ``curves.png``.

Multi-GPU/multi-process: launched by ``torchrun`` (``WORLD_SIZE`` > 1) the script initialises
the process group (nccl on CUDA, gloo on CPU), wraps the model in DistributedDataParallel and
shards every epoch with a DistributedSampler; ``--batch-size`` is per process; only rank 0
evaluates and writes.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.config import ConfigError, ModelConfig, load_config
from model.data import DATASETS, DataError, dataset_pixel_bits, load_dataset
from model.network import STFNet, firing_rates
from quant.artifact import atomic_write_bytes

__all__ = ["TrainError", "main", "compute_loss", "augment_shift", "CHECKPOINT", "METRICS", "CURVES"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CURVES = "curves.png"
CKPT_FORMAT = "stf-fpga-checkpoint"


class TrainError(Exception):
    """The run cannot start or continue; the message says why and what to do."""


def compute_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; logits [B, C], or [B, T, C] for the mean of the per-timestep losses (TET)."""
    if logits.dim() == 3:
        b, t, c = logits.shape
        return F.cross_entropy(logits.reshape(b * t, c), labels.repeat_interleave(t))
    return F.cross_entropy(logits, labels)


def augment_shift(images: torch.Tensor, gen: torch.Generator, prob: float) -> torch.Tensor:
    """Shift each image by -1, 0 or +1 pixel in each direction (zero fill), with probability ``prob``."""
    if prob <= 0:
        return images
    b, h, w = images.shape[:3]
    padded = F.pad(images.movedim((1, 2), (-2, -1)), (1, 1, 1, 1)).movedim((-2, -1), (1, 2))
    choice = torch.randint(0, 9, (b,), generator=gen)
    choice[torch.rand(b, generator=gen) >= prob] = 4  # offset (0, 0)
    out = torch.empty_like(images)
    for k in range(9):
        idx = choice == k
        if idx.any():
            dy, dx = divmod(k, 3)
            out[idx] = padded[idx, dy : dy + h, dx : dx + w]
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m model.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--config", default="digits-tiny", help="preset name or ModelConfig JSON file")
    ap.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)}")
    ap.add_argument("--data-dir", default=None, help="folder of IDX files (fashion-mnist, mnist)")
    ap.add_argument("--epochs", type=int, default=240, help="total epochs (with --resume: the new total)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="run folder (refused if it exists, unless --force or --resume)")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    ap.add_argument("--force", action="store_true", help="start afresh in an existing --out, deleting its run files")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--stf", default=None, choices=("off", "tspe", "tf", "both"), help="override the config's STF mode")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate (cosine decay to 0)")
    ap.add_argument("--batch-size", type=int, default=32, help="images per step (per process under torchrun)")
    ap.add_argument("--shift-prob", type=float, default=0.1, help="probability of a random 1-pixel shift per image")
    ap.add_argument("--ema", type=float, default=0.999,
                    help="decay of the exponential moving average of the weights that is evaluated and exported (0: off)")
    ap.add_argument("--loss", default="tet", choices=("tet", "sum"),
                    help="tet: mean of the cross-entropies of each timestep's logits; sum: cross-entropy of the summed logits")
    ap.add_argument("--init-rate", type=float, default=0.2, help="target firing rate of the threshold initialisation")
    ap.add_argument("--pos-std", type=float, default=1.0, help="initial position table std, relative to the patch embedding's")
    ap.add_argument("--train-subset", type=int, default=0,
                    help="train on the first N images of the training split only (0: all); for reduced-budget experiments")
    ap.add_argument("--test-subset", type=int, default=0,
                    help="evaluate each epoch on the first N images of the test split only (0: all)")
    return ap


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plot(metrics: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [m["epoch"] for m in metrics]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [m["train_loss"] for m in metrics], label="train")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.legend()
    b.plot(ep, [100 * m["train_accuracy"] for m in metrics], label="train")
    b.plot(ep, [100 * m["test_accuracy"] for m in metrics], label="test (integer)")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy %")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), overwrite=True)


@torch.no_grad()
def _evaluate(model: STFNet, images: torch.Tensor, labels: torch.Tensor, batch: int = 512):
    model.eval()
    correct, rates = 0, {}
    for i in range(0, len(images), batch):
        logits, out = model(images[i : i + batch], record=True)
        correct += int((logits.argmax(-1) == labels[i : i + batch]).sum())
        for k, v in firing_rates(model.cfg, out).items():
            rates[k] = rates.get(k, 0.0) + v * len(logits)
    model.train()
    return correct / len(images), {k: round(v / len(images), 4) for k, v in rates.items()}


def _resolve_config(args) -> ModelConfig:
    cfg = load_config(args.config)
    if args.stf is not None:
        cfg = cfg.with_stf(args.stf)
    return cfg


def _load_data(cfg: ModelConfig, args):
    if args.dataset not in DATASETS:
        raise DataError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    xtr, ytr = load_dataset(args.dataset, "train", args.data_dir)
    xte, yte = load_dataset(args.dataset, "test", args.data_dir)
    h, w, _ = cfg.image_shape
    if xtr.shape[1:3] != (h, w):
        raise TrainError(
            f"config {cfg.name} expects {h}x{w} images but {args.dataset} has "
            f"{xtr.shape[1]}x{xtr.shape[2]}; pick a matching --config"
        )
    if dataset_pixel_bits(args.dataset) != cfg.pixel_bits:
        raise TrainError(
            f"config {cfg.name} has pixel_bits={cfg.pixel_bits} but {args.dataset} pixels need "
            f"{dataset_pixel_bits(args.dataset)} bits; pick a matching --config"
        )
    for flag, n, total in (("--train-subset", args.train_subset, len(xtr)), ("--test-subset", args.test_subset, len(xte))):
        if n < 0 or n > total:
            raise TrainError(f"{flag} must be in [0, {total}] ({args.dataset} has {total} images there; 0 means all), got {n}")
    if args.train_subset:
        xtr, ytr = xtr[: args.train_subset], ytr[: args.train_subset]
    if args.test_subset:
        xte, yte = xte[: args.test_subset], yte[: args.test_subset]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a).astype(np.int64))  # noqa: E731
    return t(xtr), t(ytr), t(xte), t(yte)


def _prepare_out(out: Path, args) -> dict | None:
    """Check the run folder; return the checkpoint to resume from (or None)."""
    ckpt_path = out / CHECKPOINT
    if args.resume:
        if not ckpt_path.is_file():
            raise TrainError(f"--resume: {ckpt_path} does not exist; start the run without --resume")
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a corrupt file
            raise TrainError(f"--resume: {ckpt_path} is not a readable checkpoint: {e}") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
            raise TrainError(f"--resume: {ckpt_path} is not a model.train checkpoint")
        return ckpt
    if out.exists():
        if not args.force:
            raise TrainError(f"run folder {out} exists; pass --resume to continue it or --force to start afresh")
        for name in (CHECKPOINT, METRICS, CURVES):
            if (out / name).exists():
                (out / name).unlink()
    return None


def _setup_distributed(device_name: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device_name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available; use --device cpu")
    device = torch.device(device_name)
    rank, local = 0, 0
    if world > 1:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    if device.type == "cuda":
        # TF32 matmuls round to 10 mantissa bits and would break the integer exactness
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return world, rank, local, device


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        if args.epochs < 1:
            raise TrainError(f"--epochs must be at least 1, got {args.epochs}")
        if args.batch_size < 1:
            raise TrainError(f"--batch-size must be at least 1, got {args.batch_size}")
        world, rank, local, device = _setup_distributed(args.device)
        ckpt = _prepare_out(out, args) if rank == 0 else None
        if world > 1:
            import torch.distributed as dist

            box = [ckpt]
            dist.broadcast_object_list(box, src=0)
            ckpt = box[0]
        if ckpt is not None:
            cfg = ModelConfig.from_json(ckpt["config"])
            old = json.loads(ckpt["args"])
            given = _resolve_config(args) if "--config" in argv or "--stf" in argv else cfg
            if given.hash != cfg.hash:
                raise TrainError(f"--resume: the run in {out} trains config {cfg.name} ({cfg.hash}), not {given.name} ({given.hash})")
            for key in ("dataset", "seed"):
                if f"--{key}" in argv and getattr(args, key) != old[key]:
                    raise TrainError(f"--resume: the run in {out} uses --{key} {old[key]}, not {getattr(args, key)}")
            for key in ("dataset", "data_dir", "seed", "lr", "batch_size", "shift_prob", "init_rate", "pos_std", "ema", "loss"):
                setattr(args, key, old[key])
            for key in ("train_subset", "test_subset"):  # absent from runs made before these options
                setattr(args, key, old.get(key, 0))
        else:
            cfg = _resolve_config(args)
        xtr, ytr, xte, yte = _load_data(cfg, args)
    except (TrainError, ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    torch.manual_seed(args.seed)
    model = STFNet(cfg)
    init_rates = None
    if ckpt is None:
        init_rates = model.init_thresholds(xtr[: min(512, len(xtr))], rate=args.init_rate, pos_std=args.pos_std)
    model.to(device)
    ema = None
    if args.ema > 0:
        ema = STFNet(cfg).to(device)
        ema.load_state_dict(model.state_dict())
        ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    metrics: list[dict] = []
    start = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        metrics = json.loads(ckpt["metrics"])
        start = int(ckpt["epoch"])
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)

    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(len(xtr)), num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    run_args = {k: v for k, v in vars(args).items() if k not in ("resume", "force")}
    run_args["command"] = "python -m model.train " + shlex.join(a for a in argv if a not in ("--resume", "--force"))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        print(f"config {cfg.name} ({cfg.hash}) stf={cfg.stf}, {sum(p.numel() for p in model.parameters())} "
              f"parameters; {args.dataset}: {len(xtr)} train / {len(xte)} test images; device {device}, "
              f"{world} process(es)")
        if init_rates is not None:
            print("firing rates after threshold initialisation: "
                  + ", ".join(f"{k} {100 * v:.0f}%" for k, v in init_rates.items()))
        if start >= args.epochs:
            print(f"{out} has already trained {start} epochs (--epochs {args.epochs}); nothing to do")

    from tqdm import tqdm

    for epoch in range(start, args.epochs):
        t0 = time.time()
        sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(args.seed * 100003 + epoch * 131 + rank)
        idx = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", disable=rank != 0 or None,
                   leave=False, dynamic_ncols=True)
        for i in bar:
            b = idx[i * args.batch_size : (i + 1) * args.batch_size]
            images = augment_shift(xtr[b], gen, args.shift_prob).to(device)
            labels = ytr[b].to(device)
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            logits, out_t = net(images)
            loss = compute_loss(out_t["float_logits_t"] if args.loss == "tet" else logits, labels)
            finite = torch.isfinite(loss.detach()).to(torch.float32)
            if world > 1:
                import torch.distributed as dist

                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() == 0:
                if rank == 0:
                    bar.close()
                    kept = (f"the last good checkpoint (epoch {epoch}) is kept in {out / CHECKPOINT}"
                            if epoch > 0 else "no epoch had finished, so there is no checkpoint")
                    print(f"error: the loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                          f"{kept}. Lower --lr (now {args.lr}) and continue with --resume, or start afresh with --force",
                          file=sys.stderr)
                return 3
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(pm, 1.0 - args.ema)
            n = len(labels)
            tot_loss += loss.item() * n
            tot_correct += int((logits.detach().argmax(-1) == labels).sum())
            seen += n
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{100 * tot_correct / seen:.1f}%")
        bar.close()
        if rank != 0:
            continue
        test_acc, rates = _evaluate(ema if ema is not None else model, xte.to(device), yte.to(device))
        metrics.append({
            "epoch": epoch + 1, "train_loss": tot_loss / seen, "train_accuracy": tot_correct / seen,
            "test_accuracy": test_acc, "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 3),
            "firing_rates": rates,
        })
        ckpt = {
            "format": CKPT_FORMAT, "config": cfg.to_json(), "args": json.dumps(run_args),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
            "ema": ema.state_dict() if ema is not None else {},
            "metrics": json.dumps(metrics), "rng": {"torch": torch.get_rng_state()},
        }
        _atomic_torch_save(ckpt, out / CHECKPOINT)
        summary = {"config": cfg.to_dict(), "config_hash": cfg.hash, "args": run_args, "epochs": metrics}
        atomic_write_bytes(out / METRICS, (json.dumps(summary, indent=2) + "\n").encode(), overwrite=True)
        _plot(metrics, out / CURVES, f"{out.name}: {cfg.name}, stf={cfg.stf}, {args.dataset}")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {tot_loss / seen:.4f}, train {100 * tot_correct / seen:.2f} %, "
              f"test {100 * test_acc:.2f} % ({metrics[-1]['seconds']:.1f} s)", flush=True)
    if rank == 0 and metrics:
        total = sum(m["seconds"] for m in metrics)
        print(f"done: {len(metrics)} epochs in {total:.1f} s; final integer test accuracy "
              f"{100 * metrics[-1]['test_accuracy']:.2f} %; checkpoint {out / CHECKPOINT}")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
