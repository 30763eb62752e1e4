"""Host tool for a ULX3S running an STF-FPGA bitstream, over its USB serial port.

    python -m boards.ulx3s info
    python -m boards.ulx3s classify --dataset digits --count 100
    python -m boards.ulx3s classify digit.png --artifact artifacts/digits-tiny.npz
    python -m boards.ulx3s load artifacts/digits-tiny.npz
    python -m boards.ulx3s --sim classify --dataset digits --count 5      # no board needed

``--sim`` runs the board's gateware (UART, host link and, with ``--sim-core rtl``, the network
datapath) in Amaranth's simulator instead of opening a serial port: the same host code, 10-15 s
per image with the RTL core, 1-2 s with the golden stand-in. The protocol is docs/host-protocol.md; errors are one line that names the
problem and the fix, with exit status 1 (2 for bad arguments).

The same tool serves every board of `hw.platforms.BOARDS` (``python -m boards.orangecrab`` is
``main(board="orangecrab")``): only the default port and the texts differ (`HOST_BOARDS`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boards.host import HostError, LinkTimeout, open_serial
from boards.protocol import LOAD_CHUNK_MAX

__all__ = ["main", "build_parser", "read_png", "image_shape_for", "HostBoard", "HOST_BOARDS"]


@dataclass(frozen=True)
class HostBoard:
    """What the host tool says about one board (its name is `hw.platforms.BOARDS`' key)."""

    name: str
    module: str        # python -m <module>
    description: str   # --help's first line
    port: str          # default serial port
    port_help: str
    port_where: str    # where that port is, for the missing-port message


HOST_BOARDS = {
    "ulx3s": HostBoard(
        "ulx3s", "boards.ulx3s",
        "Host tool for a ULX3S running an STF-FPGA bitstream, over its USB serial port.",
        "/dev/ttyUSB0", "serial port of the board (the ULX3S's FTDI)",
        "ULX3S: its FTDI port on the US1 USB connector, usually /dev/ttyUSB0"),
    # The OrangeCrab has no USB-UART: a 3.3 V USB-serial adapter (FTDI, CP210x, CH340: all
    # /dev/ttyUSB0 on Linux) on the Feather header carries the link (docs/build.md).
    "orangecrab": HostBoard(
        "orangecrab", "boards.orangecrab",
        "Host tool for an OrangeCrab r0.2 running an STF-FPGA bitstream, over a 3.3 V USB-serial "
        "adapter on its Feather header.",
        "/dev/ttyUSB0", "serial port of the 3.3 V USB-serial adapter wired to the OrangeCrab's "
                        "Feather pins 0 (its RX: the adapter's TX), 1 (its TX: the adapter's RX) and GND",
        "OrangeCrab: the USB-serial adapter on Feather pins 0/1, usually /dev/ttyUSB0 (CP210x, FTDI, "
        "CH340) or /dev/ttyACM0; not the OrangeCrab's own USB port"),
}


class CLIError(Exception):
    """A one-line error for the user."""


def _fmt_hash(h: int) -> str:
    return f"{h:08x}"


def image_shape_for(ident, cfg=None) -> tuple[int, int, int]:
    """(H, W, C) of the model: the artifact's config when given, else guessed from IDENTITY's
    pixel count (square grey-scale, or square RGB)."""
    if cfg is not None:
        return tuple(cfg.image_shape)
    n = ident.pixels
    for c in (1, 3):
        s = int(round((n / c) ** 0.5))
        if s * s * c == n:
            return (s, s, c)
    raise CLIError(
        f"the board's model takes {n} pixels, which is not a square image; give --artifact so the "
        "image shape is known"
    )


def default_pixel_max(shape, pixel_bits: int) -> int:
    # sklearn digits (8x8x1, 5-bit) use 0..16; everything else the full pixel range
    return 16 if (tuple(shape) == (8, 8, 1) and pixel_bits == 5) else (1 << pixel_bits) - 1


def read_png(path: str | Path, shape, pixel_bits: int, pixel_max: int | None = None, invert: bool = False,
             resize: bool = False) -> np.ndarray:
    """A PNG as integers of `shape` (H, W, C) in [0, pixel_max] (default: see --pixel-max).

    Read with Pillow when installed, else matplotlib; alpha is dropped, RGB becomes grey when
    the model has one channel (ITU-R 601 luma); ``invert`` for dark ink on a light background;
    ``resize`` scales a picture of another size (Pillow only; area averaging when shrinking).
    """
    path = Path(path)
    h, w, c = shape
    if not path.is_file():
        raise CLIError(f"{path}: no such image file")
    hi = default_pixel_max(shape, pixel_bits) if pixel_max is None else pixel_max
    if not 1 <= hi <= (1 << pixel_bits) - 1:
        raise CLIError(f"--pixel-max {hi} is outside the model's pixel range 1..{(1 << pixel_bits) - 1}")
    try:
        from PIL import Image
    except ImportError:
        Image = None
    try:
        if Image is not None:
            with Image.open(path) as im:
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h) and resize:
                    im = im.resize((w, h), Image.Resampling.BOX)
                a = np.asarray(im, np.float64) / 255.0
        else:
            import matplotlib.image as mpimg

            a = np.asarray(mpimg.imread(path), np.float64)
            if a.dtype.kind in "ui" or a.max() > 1.0:
                a = a / 255.0
            if a.ndim == 3:
                a = a[..., :3]
                if c == 1:
                    a = a @ np.array([0.299, 0.587, 0.114])
            if resize and a.shape[:2] != (h, w):
                raise CLIError(f"{path}: --resize needs Pillow (pip install pillow); resize the image to {w}x{h} first")
    except CLIError:
        raise
    except Exception as e:  # PIL.UnidentifiedImageError, OSError, ValueError: not a readable image
        raise CLIError(f"{path}: not a readable image ({e})") from None
    if a.ndim == 2:
        a = a[..., None]
    if c == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[:2] != (h, w):
        raise CLIError(
            f"{path} is {a.shape[1]}x{a.shape[0]} pixels; the model takes {w}x{h}: resize it, or pass --resize"
        )
    if invert:
        a = 1.0 - a
    return np.clip(np.rint(a * hi), 0, hi).astype(np.int64).reshape(h, w, c)


def _load_artifact(path):
    from quant.artifact import ArtifactError, load_artifact

    try:
        return load_artifact(path)
    except ArtifactError as e:
        raise CLIError(str(e)) from None


def _connect(args):
    """(host, label, board or None)."""
    if args.sim:
        from boards.simboard import SimBoard, default_artifact

        if args.sim_artifact:
            art, src = _load_artifact(args.sim_artifact), args.sim_artifact
        else:
            art, src = default_artifact()
        hw = _sim_hw(args)
        board = SimBoard.for_artifact(art, core=args.sim_core, hw=hw)
        per = "about 10-15 s" if args.sim_core == "rtl" else "about 1-2 s"
        print(f"SIMULATED board (no serial port): BoardTop in Amaranth's simulator, {args.sim_core} core, "
              f"artifact {src}; {per} of wall time per image", file=sys.stderr)
        return board.host(retries=args.retries, board=args.host_board.name), "the simulated board", board
    transport = open_serial(args.port, args.baud, args.host_board.port_where)
    from boards.host import Host

    return (Host(transport, timeout=args.timeout, retries=args.retries, board=args.host_board.name),
            f"{args.port} at {args.baud} baud", None)


def _sim_hw(args):
    """The simulated RTL board's HardwareConfig: --sim-hw (preset or JSON) with --sim-weights."""
    from hw.verilog import parse_hw_config
    from model.config import ConfigError, HardwareConfig

    try:
        hw = parse_hw_config(args.sim_hw)
    except (ConfigError, ValueError) as e:
        raise CLIError(f"--sim-hw: {e}") from None
    return HardwareConfig(**{**hw.to_dict(), "weights": args.sim_weights})


def _identify(host, label, board_name: str = "ulx3s"):
    try:
        return host.identify()
    except LinkTimeout as e:
        raise CLIError(
            f"no board answered on {label}: {e}. Is the bitstream loaded (python -m hw.build --board {board_name} "
            "--program) and the baud rate the bitstream's (--baud)?"
        ) from None


def cmd_info(args, host, label, board) -> int:
    ident = _identify(host, label, args.host_board.name)
    shell = "  (a shell bitstream: no network, refuses CLASSIFY)" if ident.config_hash32 == 0 else ""
    rows = [
        ("board", label),
        ("protocol", ident.protocol),
        ("config hash32", _fmt_hash(ident.config_hash32) + shell),
        ("image", f"{ident.pixels} pixels of {ident.pixel_bits} bits"),
        ("classes", ident.classes),
        ("weight bits", ident.weight_bits),
        ("lanes x token lanes", f"{ident.lanes} x {ident.token_lanes}"),
        ("core clock", f"{ident.clock_khz / 1000:g} MHz" + (" (nominal, simulated)" if board else "")),
        ("weights", "loadable (LOAD_WEIGHTS)" if ident.loadable
         else "baked into the bitstream (rebuild to change them)"),
    ]
    if args.artifact:
        art = _load_artifact(args.artifact)
        ok = art.config.hash32 == ident.config_hash32
        rows.append(("artifact", f"{args.artifact}: config hash {_fmt_hash(art.config.hash32)} "
                                  + ("matches" if ok else "DOES NOT match: rebuild the bitstream for it")))
    for k, v in rows:
        print(f"{k:>20}: {v}")
    return 0


def _load_weights(args, host, art, path, board) -> None:
    """Host.load_weights with a progress bar and a one-line summary (bytes, chunks, time)."""
    from tqdm import tqdm

    t0 = time.monotonic()
    bar = tqdm(unit="B", unit_scale=True, disable=args.quiet, file=sys.stderr, desc="LOAD_WEIGHTS")

    def progress(sent, total):
        bar.total = total
        bar.update(sent - bar.n)

    try:
        acks = host.load_weights(art, path, chunk_size=args.chunk, progress=progress)  # WeightsBaked, ...
    finally:
        bar.close()
    dt = max(time.monotonic() - t0, 1e-9)
    sent = sum(a.length for a in acks)
    print(f"loaded {path}: {sent} bytes of the {acks[-1].image_size}-byte parameter image in {len(acks)} chunks, "
          f"every chunk's CRC-16 verified by the device ({dt:.2f} s{', simulated board' if board else ''}; "
          f"link: {host.stats.retries} retries, {host.stats.naks} NAKs)")


def cmd_load(args, host, label, board) -> int:
    art = _load_artifact(args.artifact_file)
    _identify(host, label, args.host_board.name)
    _load_weights(args, host, art, args.artifact_file, board)
    return 0


def _images(args, ident, cfg):
    """(images [B, ...], labels or None, names)."""
    shape = image_shape_for(ident, cfg)
    if args.images and args.dataset:
        raise CLIError("give image files or --dataset, not both")
    if args.images:
        ims = [read_png(p, shape, ident.pixel_bits, args.pixel_max, args.invert, args.resize) for p in args.images]
        return np.stack(ims), None, [str(p) for p in args.images]
    if not args.dataset:
        raise CLIError("nothing to classify: give IMAGE.png files or --dataset NAME --count N")
    from model.data import DataError, load_dataset

    try:
        x, y = load_dataset(args.dataset, args.split, args.data_dir)
    except DataError as e:
        raise CLIError(str(e)) from None
    if args.count < 1 or args.start < 0 or args.start >= len(x):
        raise CLIError(f"--start {args.start} / --count {args.count}: the {args.dataset} {args.split} split has "
                       f"{len(x)} images (start in 0..{len(x) - 1}, count >= 1)")
    x, y = x[args.start: args.start + args.count], y[args.start: args.start + args.count]
    if x[0].size != ident.pixels:
        raise CLIError(f"{args.dataset} images have {x[0].size} pixels; the board's model takes {ident.pixels} "
                       "(pick the data set the bitstream was built for)")
    hi = int(x.max()) if x.size else 0
    if hi > (1 << ident.pixel_bits) - 1:
        raise CLIError(f"{args.dataset} pixels reach {hi}, above the board's {ident.pixel_bits}-bit range")
    names = [f"{args.dataset}/{args.split}[{args.start + i}]" for i in range(len(x))]
    return x, y, names


def cmd_classify(args, host, label, board) -> int:
    from tqdm import tqdm

    ident = _identify(host, label, args.host_board.name)
    if args.load and args.artifact and Path(args.load).resolve() != Path(args.artifact).resolve():
        raise CLIError("--load and --artifact name different artifacts; the answers are compared with the "
                       "loaded one (give only --load)")
    art = _load_artifact(args.artifact or args.load) if (args.artifact or args.load) else None
    if art is not None:
        host.check_config(art.config.hash32, args.artifact or args.load)  # refuse before sending
    if args.load:
        _load_weights(args, host, art, args.load, board)
    elif art is None and board is not None:
        art = board.core.artifact if hasattr(board.core, "artifact") else board.core.top.artifact
    cfg = art.config if art is not None else None
    x, y, names = _images(args, ident, cfg)
    ref = None
    if art is not None:
        from quant.golden import forward, spike_counts

        imgs = x.reshape((len(x),) + tuple(cfg.image_shape))
        ref_pred, ref_logits, ref_spikes = [], [], []
        for i in range(0, len(imgs), 256):
            g = forward(art, imgs[i:i + 256], record=True)
            ref_pred.append(g["pred"])
            ref_logits.append(g["logits"])
            ref_spikes.append(spike_counts(cfg, g))
        ref = (np.concatenate(ref_pred), np.concatenate(ref_logits), np.concatenate(ref_spikes))
    results = []
    t0 = time.monotonic()
    bar = tqdm(total=len(x), unit="img", disable=args.quiet or len(x) < 2, file=sys.stderr)
    try:
        for i in range(len(x)):
            results.append(host.classify(x[i]))
            bar.update()
    finally:
        bar.close()
    dt = max(time.monotonic() - t0, 1e-9)
    pred = np.array([r.cls for r in results])
    cycles = np.array([r.cycles for r in results], np.int64)
    from quant.golden import spike_layers

    layer_names = (spike_layers(cfg) if cfg is not None and len(spike_layers(cfg)) == ident.spike_layers
                   else [f"layer{k}" for k in range(ident.spike_layers)])
    rows = []
    for i, r in enumerate(results):
        row = {"image": names[i], "class": r.cls, "logits": list(r.logits), "cycles": r.cycles,
               "spike_counts": list(r.spike_counts)}
        if y is not None:
            row["label"] = int(y[i])
        if ref is not None:
            # spike counts too, where the bitstream reports them
            row["golden_agrees"] = bool(r.cls == ref[0][i] and list(r.logits) == ref[1][i].tolist()
                                        and (not r.spike_counts or list(r.spike_counts) == ref[2][i].tolist()))
        rows.append(row)
    if len(x) <= args.show:
        for row in rows:
            extra = f"  label {row['label']}" if "label" in row else ""
            print(f"{row['image']}: class {row['class']}{extra}  logits {row['logits']}  cycles {row['cycles']}")
            if args.spikes:
                print("    spikes " + (", ".join(f"{n} {c}" for n, c in zip(layer_names, row["spike_counts"]))
                                       or "(this bitstream reports no spike counts)"))
    summary = {
        "board": label, "simulated": board is not None, "images": len(x), "seconds": round(dt, 3),
        "images_per_s": round(len(x) / dt, 3), "mean_cycles": float(cycles.mean()),
        "core_us_per_image": float(cycles.mean() / ident.clock_khz * 1000) if ident.clock_khz else None,
        "retries": host.stats.retries, "naks": host.stats.naks,
    }
    if y is not None:
        summary["accuracy"] = float((pred == y).mean())
    if ref is not None:
        summary["golden_agreement"] = float(np.mean([r["golden_agrees"] for r in rows]))
    line = f"{len(x)} images in {dt:.2f} s ({summary['images_per_s']:.2f} images/s"
    line += ", simulated)" if board is not None else ")"
    if "accuracy" in summary:
        line += f"; accuracy {100 * summary['accuracy']:.2f} %"
    if "golden_agreement" in summary:
        line += f"; equal to the golden model on {100 * summary['golden_agreement']:.1f} %"
    line += f"; {summary['mean_cycles']:.0f} cycles/image"
    if summary["core_us_per_image"] is not None:
        line += f" ({summary['core_us_per_image']:.1f} us at {ident.clock_khz / 1000:g} MHz"
        line += " nominal)" if board is not None else ")"
    line += f"; link: {host.stats.retries} retries, {host.stats.naks} NAKs"
    print(line)
    if args.out:
        from quant.artifact import atomic_write_bytes

        try:
            atomic_write_bytes(args.out, json.dumps({"summary": summary, "results": rows}, indent=1).encode(),
                               overwrite=args.force)
        except FileExistsError as e:
            raise CLIError(str(e)) from None
        print(f"wrote {args.out}")
    return 0


def build_parser(board: str = "ulx3s") -> argparse.ArgumentParser:
    hb = HOST_BOARDS[board]
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ap = argparse.ArgumentParser(prog=f"python -m {hb.module}", description=hb.description, formatter_class=fmt)
    ap.set_defaults(host_board=hb)
    ap.add_argument("--port", default=hb.port, help=hb.port_help)
    ap.add_argument("--baud", type=int, default=115200, help="UART bit rate; must be the bitstream's")
    ap.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each response (serial)")
    ap.add_argument("--retries", type=int, default=3, help="extra attempts after a timeout or a damaged frame")
    ap.add_argument("--sim", action="store_true", help="use the simulated board instead of a serial port")
    ap.add_argument("--sim-core", choices=("rtl", "golden"), default="rtl",
                    help="with --sim: the network datapath (rtl) or a behavioural stand-in (golden, faster)")
    ap.add_argument("--sim-artifact", default=None,
                    help="with --sim: the artifact baked into the simulated board (default: "
                         "artifacts/digits-tiny.npz, or a random digits-tiny artifact without it)")
    ap.add_argument("--sim-hw", default="small", help="with --sim and rtl: HW_PRESETS name or JSON object")
    ap.add_argument("--sim-weights", choices=("baked", "loadable"), default="loadable",
                    help="with --sim and rtl: weights baked in, or loadable over the link (LOAD_WEIGHTS); the "
                         "simulated board starts with the --sim-artifact's weights either way")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{info,load,classify}")

    p = sub.add_parser("info", help="what the board's bitstream is (IDENTIFY)", formatter_class=fmt)
    p.add_argument("--artifact", default=None, help="also check this artifact's config hash against the board's")

    p = sub.add_parser("load", help="load an artifact's weights over the link and verify them (baked bitstreams "
                                    "say how to rebuild)",
                       formatter_class=fmt)
    p.add_argument("artifact_file", metavar="ARTIFACT", help="artifact .npz")
    p.add_argument("--chunk", type=int, default=LOAD_CHUNK_MAX,
                   help="bytes per LOAD_WEIGHTS frame (whole rows are sent; at most the device's buffer)")

    p = sub.add_parser("classify", help="classify PNG images or a data set's images", formatter_class=fmt)
    p.add_argument("images", nargs="*", metavar="IMAGE.png", help="image files")
    p.add_argument("--dataset", default=None, help="digits, fashion-mnist or mnist")
    p.add_argument("--split", default="test", help="train or test")
    p.add_argument("--data-dir", default=None, help="folder of the IDX files (fashion-mnist, mnist)")
    p.add_argument("--count", type=int, default=100, help="images to classify")
    p.add_argument("--start", type=int, default=0, help="index of the first image in the split")
    p.add_argument("--artifact", default=None,
                   help="the artifact the bitstream was built from: its config hash is checked before "
                        "sending, and every answer is compared with its golden model")
    p.add_argument("--pixel-max", type=int, default=None,
                   help="PNG: white maps to this value (default: 16 for the 8x8 5-bit digits model, "
                        "whose data are 0..16; else 2**pixel_bits - 1)")
    p.add_argument("--invert", action="store_true", help="PNG: dark ink on a light background")
    p.add_argument("--resize", action="store_true", help="PNG: scale to the model's size (needs Pillow)")
    p.add_argument("--show", type=int, default=20, help="print one line per image when at most this many")
    p.add_argument("--spikes", action="store_true", help="also print each image's spike count per layer")
    p.add_argument("--load", default=None, metavar="ARTIFACT",
                   help="load this artifact's weights first (loadable bitstreams) and compare with its golden model")
    p.add_argument("--chunk", type=int, default=LOAD_CHUNK_MAX, help="with --load: bytes per LOAD_WEIGHTS frame")
    p.add_argument("--out", default=None, help="write results and summary to this JSON file (atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    return ap


def main(argv=None, *, board: str = "ulx3s") -> int:
    args = build_parser(board).parse_args(argv)
    if args.retries < 0 or args.timeout <= 0:
        print(f"error: --retries must be >= 0 and --timeout > 0 (got {args.retries}, {args.timeout})", file=sys.stderr)
        return 2
    board = None
    try:
        if args.command == "load":
            _load_artifact(args.artifact_file)  # a bad file is reported before any board is opened
        host, label, board = _connect(args)
        return {"info": cmd_info, "load": cmd_load, "classify": cmd_classify}[args.command](args, host, label, board)
    except (CLIError, HostError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if board is not None:
            board.close()
        elif "host" in locals() and hasattr(host.transport, "close"):
            host.transport.close()


if __name__ == "__main__":
    sys.exit(main())
