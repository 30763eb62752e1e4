"""pytest side of ``sim/tb_stream.py``: run a stream-in / stream-out component, get its outputs.

``run_streams(design, {"i": items}, {"o": n})`` feeds every input stream its items (ints, or
dicts of leaf fields for struct/array payloads, as the port manifest names them), collects n
transfers from every output stream and returns them decoded the same way, with the cycle of
each transfer. Stalls on inputs (valid low) and outputs (ready low) are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from sim import runner

__all__ = ["StreamRun", "run_streams", "encode_items"]


def encode_items(prefix: str, port: runner.Port, items: Sequence[Any]) -> dict[str, np.ndarray]:
    """inputs.npz arrays for `items` of stream `prefix` (see sim/tb_stream.py)."""
    n = len(items)
    if port.fields:
        if n and not isinstance(items[0], Mapping):
            raise TypeError(f"{port.name} is a struct/array payload; give items as dicts of {sorted(port.fields)}")
        out = {}
        for f, (_, width, signed) in port.fields.items():
            missing = [i for i, it in enumerate(items) if f not in it]
            if missing:
                raise KeyError(f"{port.name}: item {missing[0]} has no field {f!r}")
            col = [int(it[f]) for it in items]
            if width > 63:
                out[f"{prefix}.{f}.bits"] = _to_bits(col, width)
            else:
                out[f"{prefix}.{f}"] = np.array(col, dtype=np.int64).reshape(n)
        return out
    if port.width <= 63:
        return {prefix: np.array([int(x) for x in items], dtype=np.int64).reshape(n)}
    return {f"{prefix}.bits": _to_bits(items, port.width)}


def _to_bits(values: Sequence[int], width: int) -> np.ndarray:
    # two's complement bits, LSB first (a negative value is masked to `width` bits)
    return np.array([[(int(v) >> b) & 1 for b in range(width)] for v in values], dtype=np.uint8).reshape(-1, width)


def _from_bits(row: np.ndarray) -> int:
    return sum(int(b) << i for i, b in enumerate(row))


def _decode(prefix: str, port: runner.Port, out: Mapping[str, np.ndarray]) -> list[Any]:
    if port.fields:
        cols = {}
        for f in port.fields:
            if f"{prefix}.{f}.bits" in out:
                cols[f] = [_from_bits(r) for r in out[f"{prefix}.{f}.bits"]]
            else:
                cols[f] = out.get(f"{prefix}.{f}", np.zeros(0, np.int64))
        n = len(next(iter(cols.values()))) if cols else 0
        return [{f: int(c[i]) for f, c in cols.items()} for i in range(n)]
    if f"{prefix}.bits" in out:
        return [_from_bits(row) for row in out[f"{prefix}.bits"]]
    return [int(x) for x in out.get(prefix, [])]


@dataclass
class StreamRun:
    result: runner.RunResult
    outputs: dict[str, list[Any]]
    cycles_of: dict[str, np.ndarray]
    cycles: int

    @property
    def passed(self) -> bool:
        return self.result.passed

    def failure_text(self) -> str:
        return "\n".join(self.result.failures) + "\n" + runner.log_tail(self.result)


def run_streams(
    design: runner.Design,
    inputs: Mapping[str, Sequence[Any]],
    outputs: Mapping[str, int],
    *,
    seed: int,
    tag: str,
    static: Mapping[str, int] | None = None,
    in_stall: float = 0.0,
    out_stall: float = 0.0,
    timeout_cycles: int | None = None,
    waves: bool = False,
    schedule: Sequence[tuple[str, int, int]] | None = None,
) -> StreamRun:
    arrays: dict[str, np.ndarray] = {}
    for prefix, items in inputs.items():
        arrays.update(encode_items(prefix, design.port(f"{prefix}__payload"), items))
    n_in = sum(len(v) for v in inputs.values())
    n_out = sum(outputs.values())
    if timeout_cycles is None:
        # generous: every item may wait out its stalls, plus a pipeline's fill
        timeout_cycles = int(50 * (n_in + n_out) / max(0.05, 1 - max(in_stall, out_stall))) + 1000
    params = {"inputs": list(inputs), "outputs": dict(outputs), "static": dict(static or {}), "in_stall": in_stall,
              "out_stall": out_stall, "timeout_cycles": timeout_cycles,
              "schedule": [list(seg) for seg in schedule] if schedule else None}
    r = runner.run(design, "sim.tb_stream", inputs=arrays, params=params, seed=seed, tag=tag, waves=waves)
    outs = {p: _decode(p, design.port(f"{p}__payload"), r.outputs) for p in outputs}
    cyc = {p: r.outputs.get(f"{p}.cycle", np.zeros(0, np.int64)) for p in outputs}
    return StreamRun(r, outs, cyc, int(r.outputs.get("cycles", -1)))
