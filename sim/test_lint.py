"""`verilator --lint-only` on the Verilog that `python -m hw.verilog` writes: no errors.

Lint warnings (Amaranth's generated code trips width and unused-signal styles) are allowed;
anything Verilator calls an error fails, with its first lines in the message.
"""

import subprocess
from pathlib import Path

import pytest

from hw.verilog import main as verilog_main

from quant.artifact import SHIPPED_ARTIFACT as SHIPPED


FMNIST = Path(SHIPPED).parent / "fmnist-small.npz"  # the per-token readout's HEAD pass


@pytest.mark.parametrize("artifact,hw_cfg,trace", [(SHIPPED, "default", False), (SHIPPED, "small", True),
                                                   (FMNIST, "small", False)], ids=["digits-default", "digits-small-trace", "fmnist-small"])
def test_generated_verilog_lints_clean(sim, tmp_path, artifact, hw_cfg, trace):
    if sim != "verilator":
        pytest.skip("lint uses Verilator")
    out = tmp_path / "top.v"
    argv = ["--artifact", str(artifact), "--hw-config", hw_cfg, "--out", str(out)] + (["--trace"] if trace else [])
    assert verilog_main(argv) == 0
    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "top",
                        str(out)], capture_output=True, text=True, timeout=600)
    errors = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("%Error")]
    assert r.returncode == 0 and not errors, "\n".join(errors[:10] or (r.stdout + r.stderr).splitlines()[-10:])
