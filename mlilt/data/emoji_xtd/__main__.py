"""``python -m mlilt.data.emoji_xtd [--out DIR] [--force]``."""

from .cli import main

raise SystemExit(main())
