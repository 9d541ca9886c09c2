"""Entry point of ``python -m warehouse``."""

import sys

from warehouse.cli import main

sys.exit(main())
