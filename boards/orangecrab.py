"""Host tool for an OrangeCrab r0.2 running an STF-FPGA bitstream, over a USB-serial adapter.

    python -m boards.orangecrab info
    python -m boards.orangecrab classify --dataset digits --count 100
    python -m boards.orangecrab --port /dev/ttyACM0 info      # an adapter that enumerates as ACM

The OrangeCrab's own USB port goes to the FPGA (its DFU bootloader; the STF bitstream has no USB
device), so the host link runs over a 3.3 V USB-serial adapter on the Feather header: the
adapter's TX to pin 0, its RX to pin 1, GND to GND (docs/build.md). Everything else is
`boards.ulx3s`' tool: the same commands, options and errors.
"""

from __future__ import annotations

import sys

from boards.ulx3s import main as _main

__all__ = ["main"]


def main(argv=None) -> int:
    return _main(argv, board="orangecrab")


if __name__ == "__main__":
    sys.exit(main())
