"""The bench infrastructure on a real (library) design: Amaranth's SyncFIFOBuffered.

Checks what every other bench relies on: Verilog generation with explicit ports, the build
cache (a second build of the same design compiles nothing), the file channel between pytest and
cocotb, and that the stream driver/monitor lose, duplicate or reorder nothing under random
stalls on both sides (a FIFO must return exactly what went in).
"""

import numpy as np
import pytest

from sim import runner
from sim.scoreboard import compare_arrays


def _fifo_design(sim, width=8, depth=4):
    from amaranth.lib.fifo import SyncFIFOBuffered

    def make():
        fifo = SyncFIFOBuffered(width=width, depth=depth)
        ports = {"i__payload": fifo.w_data, "i__valid": fifo.w_en, "i__ready": fifo.w_rdy,
                 "o__payload": fifo.r_data, "o__valid": fifo.r_rdy, "o__ready": fifo.r_en}
        return fifo, ports

    fifo, ports = make()
    return runner.build(fifo, name=f"fifo_w{width}_d{depth}", sim=sim, ports=ports)


def test_manifest_and_cache(sim):
    d1 = _fifo_design(sim)
    ports = {p.name: p for p in d1.ports}
    assert ports["i__payload"].width == 8 and ports["i__payload"].direction == "in"
    assert ports["i__ready"].direction == "out" and ports["o__ready"].direction == "in"
    assert ports["clk"].direction == "in"
    d2 = _fifo_design(sim)
    assert d2.build_dir == d1.build_dir
    assert d2.build_seconds == 0.0, "the second build of an identical design must reuse the cache"
    d3 = _fifo_design(sim, depth=5)
    assert d3.build_dir != d1.build_dir, "a different design must get its own build folder"
    left = sorted(f.name for f in d1.build_dir.iterdir() if f.suffix in (".gch", ".o", ".a", ".cpp", ".h"))
    assert left == [], f"a finished build keeps only what a run needs, found {left}"


@pytest.mark.parametrize("in_stall,out_stall", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.6), (0.4, 0.7)])
def test_stream_roundtrip(sim, seed, waves, in_stall, out_stall):
    design = _fifo_design(sim)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 200)
    r = runner.run(design, "sim.tb_stream_fifo", inputs={"data": data},
                   params={"in_stall": in_stall, "out_stall": out_stall}, seed=seed,
                   tag=f"roundtrip-{in_stall}-{out_stall}", waves=waves)
    assert r.passed, f"{r.failures}\n{runner.log_tail(r)}"
    m = compare_arrays("fifo.o", data, r["data"], ("token",), seed=seed)
    assert m is None, str(m)
    n = len(data)
    if in_stall == 0 and out_stall == 0:
        # one transfer per cycle when nobody stalls: the driver adds no bubbles of its own
        assert r["cycles"] <= n + 4, f"{r['cycles']} cycles for {n} items without stalls"
    else:
        assert r["cycles"] > n + 4, "stalls were requested but the run was as fast as without"


def test_failure_is_reported_with_waves(sim, seed):
    """A bench whose data disagree must fail, keep a waveform and say where it is."""
    design = _fifo_design(sim)
    r = runner.run(design, "sim.tb_stream_fifo", inputs={"data": np.arange(5)},
                   params={"in_stall": 0.0, "out_stall": "not-a-number"}, seed=seed, tag="broken")
    assert not r.passed and r.failures
    assert r.waves is not None and r.waves.is_file() and r.waves.stat().st_size > 0


def test_keyed_design_is_not_elaborated_again(sim):
    """A design built under a key is found again (in process and on disk) without elaborating."""
    from amaranth.lib.fifo import SyncFIFOBuffered

    def make():
        fifo = SyncFIFOBuffered(width=4, depth=2)
        return fifo

    def ports_of(fifo):
        return {"i__payload": fifo.w_data, "i__valid": fifo.w_en, "i__ready": fifo.w_rdy,
                "o__payload": fifo.r_data, "o__valid": fifo.r_rdy, "o__ready": fifo.r_en}

    fifo = make()
    d1 = runner.build(fifo, name="fifo_keyed", sim=sim, key=("w4", "d2"), ports=ports_of(fifo))

    def must_not_run():
        raise AssertionError("the factory ran although the keyed design was cached")

    d2 = runner.build(must_not_run, name="fifo_keyed", sim=sim, key=("w4", "d2"))
    assert d2 is d1
    runner._DESIGNS.clear()  # a new pytest process: only the on-disk pointer remains
    d3 = runner.build(must_not_run, name="fifo_keyed", sim=sim, key=("w4", "d2"))
    assert d3.build_dir == d1.build_dir and d3.ports == d1.ports


def test_generic_stream_bench_wide_payload(sim, seed):
    """sim.tb_stream through an 80-bit FIFO: payloads wider than 63 bits travel as bit rows."""
    from sim.streams import run_streams

    design = _fifo_design(sim, width=80, depth=3)
    rng = np.random.default_rng(seed)
    items = [int.from_bytes(rng.bytes(10), "little") for _ in range(60)]
    items[:2] = [0, (1 << 80) - 1]
    r = run_streams(design, {"i": items}, {"o": len(items)}, seed=seed, tag="wide", in_stall=0.3, out_stall=0.3)
    assert r.passed, r.failure_text()
    assert r.outputs["o"] == items, f"FIFO output differs from its input (seed {seed})"
    assert list(r.cycles_of["o"]) == sorted(r.cycles_of["o"]) and len(r.cycles_of["o"]) == len(items)


def test_generic_stream_bench_reports_missing_output(sim, seed):
    """Asking for more outputs than the design can give must fail and name the stream."""
    from sim.streams import run_streams

    design = _fifo_design(sim)
    r = run_streams(design, {"i": [1, 2, 3]}, {"o": 4}, seed=seed, tag="missing", timeout_cycles=200)
    assert not r.passed
    assert any("o: 3 of 4 expected transfers" in f for f in r.result.failures), r.result.failures
