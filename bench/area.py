"""``python -m bench area``: the same benchmark as ``python -m bench hw`` (area and Fmax against
latency over a sweep of lanes, on the ULX3S 25F and 85F), under the name the benchmark list uses.
``python -m bench all`` runs it once, as ``hw``."""

from __future__ import annotations

from bench.hw import main

__all__ = ["main"]
