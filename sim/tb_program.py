"""Generic cocotb bench that plays a cycle program written on the pytest side.

For components controlled by pulses and valid flags rather than streams (adder trees, LIF
arrays, the spike-driven linear unit, attention, encoder), the pytest side writes the stimulus
as a list of steps in params.json (``program``) and lists monitors (``monitors``); this module
only plays them and records what it saw, so every expectation lives next to the golden model
on the pytest side (``sim.program.Program``).

Steps (all times are clock cycles after reset):

``{"set": {port: value}}``                 drive ports from now on (value: int, or {field: int})
``{"tick": n}``                            let n cycles pass
``{"wait": port, "value": v, "timeout": n, "sample": [ports], "name": s}``
                                           let cycles pass until one where ``port == v`` (ReadOnly
                                           phase); sample `ports` in that cycle; continue after its
                                           edge. Fails naming `s` after `timeout` cycles.
``{"sample": [ports], "name": s}``         sample `ports` in the current cycle, then let it pass
``{"mark": s}``                            remember the current cycle number under `s`

Monitors ``{name: {"valid": port, "ports": [ports]}}`` record `ports` in every cycle where
`valid` is 1. Output (outputs.json): ``samples`` {name: [{port: value}]}, ``sample_cycles``,
``monitors`` {name: [{port: value}]}, ``monitor_cycles``, ``marks``, ``cycles``.
"""

import json

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from sim.scoreboard import drive_inputs_low, load_params, load_ports, pack, run_dir, start_clock_and_reset, to_int, unpack


class _Player:
    def __init__(self, dut, ports):
        self.dut, self.ports = dut, ports
        self.cycle = 0
        # A purely combinational design (e.g. a one-input tree) has no clock: a "cycle" is then
        # 10 ns of simulated time, so the same programs run on it.
        self.clocked = "clk" in ports

    def tick_trigger(self):
        return RisingEdge(self.dut.clk) if self.clocked else Timer(10, unit="ns")

    def write(self, name, value):
        port = self.ports.get(name)
        if port is None:
            raise AssertionError(f"the design has no port {name!r}")
        if port["width"] == 0:
            return  # a zero-width port (e.g. the address of a 1-deep memory) carries nothing
        word = pack(port, value) if isinstance(value, dict) else int(value) & ((1 << port["width"]) - 1)
        getattr(self.dut, name).value = word

    def read(self, name):
        port = self.ports[name]
        if port["width"] == 0:
            # Amaranth writes a zero-width port as [-1:0]: 2 undriven bits in Icarus, 0 in Verilator
            return unpack(port, 0) if port["fields"] else 0
        v = getattr(self.dut, name).value
        if not v.is_resolvable:
            raise AssertionError(f"{name} is X/Z at cycle {self.cycle}: {v}")
        raw = v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)  # 1-bit ports read as Logic
        return unpack(port, raw) if port["fields"] else to_int(raw, port["width"], port["signed"])

    async def edge(self):
        await self.tick_trigger()
        self.cycle += 1


@cocotb.test()
async def program(dut):
    p, ports = load_params(), load_ports()
    player = _Player(dut, ports)
    drive_inputs_low(dut, ports)
    for name, value in p.get("initial", {}).items():
        player.write(name, value)
    if player.clocked:
        await start_clock_and_reset(dut)
    monitors = {name: [] for name in p.get("monitors", {})}
    monitor_cycles = {name: [] for name in p.get("monitors", {})}

    async def watch():
        specs = p.get("monitors", {})
        while True:
            await ReadOnly()
            for name, spec in specs.items():
                if getattr(dut, spec["valid"]).value == 1:
                    monitors[name].append({q: player.read(q) for q in spec["ports"]})
                    monitor_cycles[name].append(player.cycle)
            await player.tick_trigger()

    watcher = cocotb.start_soon(watch())
    samples, sample_cycles, marks = {}, {}, {}
    for i, step in enumerate(p["program"]):
        if "set" in step:
            for name, value in step["set"].items():
                player.write(name, value)
        elif "tick" in step:
            for _ in range(int(step["tick"])):
                await player.edge()
        elif "wait" in step:
            want = int(step.get("value", 1))
            for _ in range(int(step["timeout"])):
                await ReadOnly()
                if player.read(step["wait"]) == want:
                    break
                await player.edge()
            else:
                raise AssertionError(f"step {i} ({step.get('name', step['wait'])}): {step['wait']} never became "
                                     f"{want} in {step['timeout']} cycles (cycle {player.cycle})")
            if step.get("sample"):
                samples.setdefault(step["name"], []).append({q: player.read(q) for q in step["sample"]})
                sample_cycles.setdefault(step["name"], []).append(player.cycle)
            await player.edge()
        elif "sample" in step:
            await ReadOnly()
            samples.setdefault(step["name"], []).append({q: player.read(q) for q in step["sample"]})
            sample_cycles.setdefault(step["name"], []).append(player.cycle)
            await player.edge()
        elif "mark" in step:
            marks[step["mark"]] = player.cycle
        else:
            raise AssertionError(f"step {i} is not a known step: {step}")
    await player.edge()  # let the monitor see the last cycle
    watcher.cancel()
    out = {"samples": samples, "sample_cycles": sample_cycles, "monitors": monitors,
           "monitor_cycles": monitor_cycles, "marks": marks, "cycles": player.cycle}
    (run_dir() / "outputs.json.tmp").write_text(json.dumps(out))
    (run_dir() / "outputs.json.tmp").replace(run_dir() / "outputs.json")
