"""``python -m mlilt.report RESULT_JSON... --out reports/NAME``."""

import sys

from .cli import main

sys.exit(main())
