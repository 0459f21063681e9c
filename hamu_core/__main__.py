"""``python -m hamu_core``: the headless command line (see hamu_core.cli)."""

import sys

from hamu_core.cli import main

sys.exit(main())
