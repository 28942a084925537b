"""`python -m fer_helpers ...`: see cli.py."""

import sys

from .cli import main

sys.exit(main())
