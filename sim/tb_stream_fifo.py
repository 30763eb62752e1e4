"""cocotb bench of the stream driver/monitor themselves, on Amaranth's own SyncFIFOBuffered.

Inputs (inputs.npz): ``data`` [n] payload words. Params: ``in_stall``, ``out_stall``, ``seed``.
Outputs: ``data`` [n] as received, ``cycles``.
"""

import cocotb

from sim.scoreboard import (CycleCounter, StreamDriver, StreamMonitor, load_inputs, load_params, load_ports,
                            save_outputs, start_clock_and_reset)


@cocotb.test()
async def stream_roundtrip(dut):
    ins, p, ports = load_inputs(), load_params(), load_ports()
    await start_clock_and_reset(dut)
    counter = CycleCounter(dut)
    mon = StreamMonitor(dut, "o", ports, stall=p["out_stall"], seed=p["seed"] + 1)
    drv = StreamDriver(dut, "i", ports, stall=p["in_stall"], seed=p["seed"])
    data = [int(x) for x in ins["data"]]
    await drv.send(data)
    await mon.wait(len(data), timeout_cycles=20 * len(data) + 100)
    mon.stop()
    save_outputs(data=mon.items, cycles=counter.cycles)
