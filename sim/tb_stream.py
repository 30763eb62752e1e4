"""Generic cocotb bench for a component with stream inputs and stream outputs.

The pytest side (``sim.streams.run_streams``) describes the run in params.json:

``inputs``   list of input stream prefixes, fed concurrently, e.g. ``["i"]``
``schedule`` optional [[prefix, start, stop], ...]: instead, feed these slices one after the
             other (e.g. weights, then the images that use them)
``outputs``  {prefix: expected number of transfers}
``static``   {port: value} held constant from reset on (configuration inputs)
``in_stall`` / ``out_stall``  stall probabilities (seeded: driver seed+i, monitor seed+100+i)
``timeout_cycles``  the run fails, naming the stream, when outputs are still missing after this

and the items in inputs.npz, per input prefix ``p``: ``p`` (int64 [n], the flat payload), or
``p.bits`` (uint8 [n, width], payloads wider than 63 bits), or one ``p.<field>`` int64 [n] per
leaf field of a struct / array payload (``p.<field>.bits`` for a field wider than 63 bits). Outputs come back in the same encodings plus
``<p>.cycle`` (cycle of each transfer, counted from the end of reset) and ``cycles``.
"""

import cocotb
import numpy as np
from cocotb.triggers import Combine, RisingEdge

from sim.scoreboard import (CycleCounter, drive_inputs_low, StreamDriver, StreamMonitor, load_inputs, load_params, load_ports,
                            save_outputs, start_clock_and_reset)


def _items(ins, prefix, port):
    if prefix in ins:
        return [int(x) for x in ins[prefix]]
    if f"{prefix}.bits" in ins:
        bits = ins[f"{prefix}.bits"]
        return [int("".join(str(int(b)) for b in row[::-1]), 2) for row in bits]
    fields = {}
    for k, v in ins.items():
        if k.startswith(prefix + "."):
            f = k[len(prefix) + 1:]
            fields[f[:-5] if f.endswith(".bits") else f] = [_from_bits(r) for r in v] if f.endswith(".bits") else v
    if not fields:
        raise AssertionError(f"inputs.npz has no items for stream {prefix!r} ({prefix}, {prefix}.bits or fields)")
    n = len(next(iter(fields.values())))
    return [{k: int(v[i]) for k, v in fields.items()} for i in range(n)]


def _from_bits(row):
    return sum(int(b) << i for i, b in enumerate(row))


def _to_bits(values, width):
    return np.array([[(int(v) >> b) & 1 for b in range(width)] for v in values], dtype=np.uint8).reshape(-1, width)


def _encode(prefix, port, items):
    out = {}
    if port["fields"]:
        for f, (_, width, _) in port["fields"].items():
            col = [it[f] for it in items]
            if width > 63:
                out[f"{prefix}.{f}.bits"] = _to_bits(col, width)
            else:
                out[f"{prefix}.{f}"] = np.array(col, dtype=np.int64)
    elif port["width"] <= 63:
        out[prefix] = np.array(items, dtype=np.int64)
    else:
        out[f"{prefix}.bits"] = _to_bits(items, port["width"])
    return out


@cocotb.test()
async def streams(dut):
    ins, p, ports = load_inputs(), load_params(), load_ports()
    drive_inputs_low(dut, ports)
    for name, value in p.get("static", {}).items():
        getattr(dut, name).value = int(value) & ((1 << ports[name]["width"]) - 1)
    await start_clock_and_reset(dut)
    counter = CycleCounter(dut)
    seed = p["seed"]
    monitors = {
        prefix: StreamMonitor(dut, prefix, ports, stall=p.get("out_stall", 0.0), seed=seed + 100 + i)
        for i, prefix in enumerate(p["outputs"])
    }
    drivers = {prefix: StreamDriver(dut, prefix, ports, stall=p.get("in_stall", 0.0), seed=seed + i)
               for i, prefix in enumerate(p["inputs"])}
    items = {prefix: _items(ins, prefix, ports[f"{prefix}__payload"]) for prefix in p["inputs"]}
    if p.get("schedule"):
        async def play():
            for prefix, start, stop in p["schedule"]:
                await drivers[prefix].send(items[prefix][start:stop])

        sends = [cocotb.start_soon(play())]
    else:
        sends = [cocotb.start_soon(drivers[prefix].send(items[prefix])) for prefix in p["inputs"]]
    waits = [cocotb.start_soon(m.wait(p["outputs"][prefix], p["timeout_cycles"])) for prefix, m in monitors.items()]
    await Combine(*sends, *waits)
    # A few more cycles: an output beyond the expected count is a bug the scoreboard must see.
    for _ in range(p.get("drain_cycles", 8)):
        await RisingEdge(dut.clk)
    out = {"cycles": counter.cycles}
    for prefix, m in monitors.items():
        m.stop()
        out.update(_encode(prefix, ports[f"{prefix}__payload"], m.items))
        out[f"{prefix}.cycle"] = np.array(m.cycle_of, dtype=np.int64)
    save_outputs(**out)
