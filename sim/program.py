"""pytest side of ``sim/tb_program.py``: write a cycle program, run it, read what was seen.

    prog = Program()
    prog.monitor("out", valid="o_valid", ports=["sum"])
    for x in items:
        prog.set(i_valid=1, inputs={"0": x[0], "1": x[1]}).tick()
    prog.set(i_valid=0).tick(10)
    seen = prog.run(design, seed=seed, tag="random")
    seen.monitor("out")  # [{"sum": ...}, ...], seen.monitor_cycles("out")

Values are ints or, for struct/array ports, dicts of leaf fields named as in the port manifest
(``"0"``, ``"1.3"``; see `fields`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from sim import runner

__all__ = ["Program", "ProgramRun", "fields"]


def fields(values: Sequence[Any], prefix: str = "") -> dict[str, int]:
    """{"0": v0, "1": v1, ...} for an ArrayLayout port; nested sequences give "i.j" names."""
    out: dict[str, int] = {}
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple)) or (hasattr(v, "ndim") and getattr(v, "ndim", 0) > 0):
            out.update(fields(list(v), f"{prefix}{i}."))
        else:
            out[f"{prefix}{i}"] = int(v)
    return out


def array(value: Mapping[str, int], n: int, prefix: str = "") -> list[int]:
    """The inverse of `fields` for one level: [value["0"], ..., value[str(n-1)]]."""
    return [int(value[f"{prefix}{i}"]) for i in range(n)]


@dataclass
class ProgramRun:
    result: runner.RunResult

    @property
    def passed(self) -> bool:
        return self.result.passed

    def failure_text(self) -> str:
        return "\n".join(self.result.failures) + "\n" + runner.log_tail(self.result)

    def monitor(self, name: str) -> list[dict[str, Any]]:
        return self.result.data.get("monitors", {}).get(name, [])

    def monitor_cycles(self, name: str) -> list[int]:
        return self.result.data.get("monitor_cycles", {}).get(name, [])

    def samples(self, name: str) -> list[dict[str, Any]]:
        return self.result.data.get("samples", {}).get(name, [])

    def sample_cycles(self, name: str) -> list[int]:
        return self.result.data.get("sample_cycles", {}).get(name, [])

    def mark(self, name: str) -> int:
        return self.result.data["marks"][name]

    @property
    def cycles(self) -> int:
        return self.result.data.get("cycles", -1)


class Program:
    def __init__(self):
        self.steps: list[dict[str, Any]] = []
        self.monitors: dict[str, dict[str, Any]] = {}
        self.initial: dict[str, Any] = {}

    def init(self, **ports) -> "Program":
        """Values driven from before reset (e.g. inputs that must be 0 during reset)."""
        self.initial.update(ports)
        return self

    def set(self, **ports) -> "Program":
        self.steps.append({"set": ports})
        return self

    def tick(self, n: int = 1) -> "Program":
        if n:
            self.steps.append({"tick": int(n)})
        return self

    def wait(self, port: str, *, value: int = 1, timeout: int = 100_000, sample: Iterable[str] = (),
             name: str | None = None) -> "Program":
        self.steps.append({"wait": port, "value": value, "timeout": timeout, "sample": list(sample),
                           "name": name or port})
        return self

    def sample(self, ports: Iterable[str], name: str) -> "Program":
        self.steps.append({"sample": list(ports), "name": name})
        return self

    def mark(self, name: str) -> "Program":
        self.steps.append({"mark": name})
        return self

    def monitor(self, name: str, *, valid: str, ports: Iterable[str]) -> "Program":
        self.monitors[name] = {"valid": valid, "ports": list(ports)}
        return self

    def run(self, design: runner.Design, *, seed: int, tag: str, waves: bool = False) -> ProgramRun:
        params = {"program": self.steps, "monitors": self.monitors, "initial": self.initial}
        return ProgramRun(runner.run(design, "sim.tb_program", params=params, seed=seed, tag=tag, waves=waves))
