"""``python -m hw.verilog``: write the Verilog of `Top` for an artifact and a hardware config.

    python -m hw.verilog --artifact artifacts/digits-tiny.npz --out build/top.v
    python -m hw.verilog --artifact A --hw-config small --trace --out build/top-trace.v
    python -m hw.verilog --artifact A --hw-config '{"lanes": 16, "token_lanes": 8}' --out top.v

``--hw-config`` is a HW_PRESETS name, a JSON object, or the path of a JSON file. The output is
written atomically and an existing file is replaced only with ``--force``. The top module is
named ``top``; its ports are Top's signature flattened by Amaranth (``pixels__valid``,
``pixels__payload``, ``result__payload``, ...; see docs/hardware.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["parse_hw_config", "generate", "main"]


def parse_hw_config(spec: str | None):
    from model.config import HW_PRESETS, ConfigError, HardwareConfig

    if spec is None:
        return HW_PRESETS["default"]
    if spec in HW_PRESETS:
        return HW_PRESETS[spec]
    text = spec
    if not spec.lstrip().startswith("{"):
        p = Path(spec)
        if not p.is_file():
            raise ConfigError(f"--hw-config {spec!r} is neither a preset ({', '.join(HW_PRESETS)}), "
                              "a JSON object nor an existing JSON file")
        text = p.read_text()
    return HardwareConfig.from_json(text)


def generate(artifact, hw_cfg, *, trace: bool = False, fault=None, name: str = "top") -> str:
    """Verilog text of Top(artifact, hw_cfg, trace, fault)."""
    from amaranth.back import verilog

    from hw.top import Top

    top = Top(artifact, hw_cfg, trace=trace, fault=fault)
    return verilog.convert(top, name=name, emit_src=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.verilog", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--artifact", required=True, help="artifact .npz (quant.export / random for tests)")
    ap.add_argument("--hw-config", default="default", help="HW_PRESETS name, JSON object or JSON file")
    ap.add_argument("--trace", action="store_true", help="add the verification trace port")
    ap.add_argument("--name", default="top", help="Verilog top module name")
    ap.add_argument("--out", required=True, help="output .v file")
    ap.add_argument("--force", action="store_true", help="replace an existing output file")
    args = ap.parse_args(argv)

    from model.config import ConfigError
    from quant.artifact import ArtifactError, atomic_write_bytes, load_artifact

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    try:
        artifact = load_artifact(args.artifact)
        hw_cfg = parse_hw_config(args.hw_config)
        text = generate(artifact, hw_cfg, trace=args.trace, name=args.name)
    except (ArtifactError, ConfigError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic_write_bytes(out, text.encode(), overwrite=True)
    cfg = artifact.config
    print(f"wrote {out} ({len(text.splitlines())} lines): {cfg.name} hash {cfg.hash}, "
          f"hw {json.dumps(hw_cfg.to_dict(), sort_keys=True)}, trace={args.trace}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
