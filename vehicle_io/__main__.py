"""``python -m vehicle_io`` is the ``z10`` command."""

import sys

from vehicle_io.cli import main

sys.exit(main())
