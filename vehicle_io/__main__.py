"""``python -m vehicle_io`` is the ``z10`` command."""

import sys

from vehicle_io.cli import main

# Guarded: Dask (z10 fleet) starts its worker processes by re-importing the main module.
if __name__ == "__main__":
    sys.exit(main())
