"""Where mlilt keeps what it downloads or converts: ``$MLILT_HOME`` (default ``~/.cache/mlilt``)."""

from __future__ import annotations

import os
from pathlib import Path


def mlilt_home() -> Path:
    """Root of mlilt's cache: converted zoo models, evaluation data, embedding caches."""
    return Path(os.environ.get("MLILT_HOME", Path.home() / ".cache" / "mlilt")).expanduser()


def zoo_dir() -> Path:
    return mlilt_home() / "zoo"


def data_dir() -> Path:
    return mlilt_home() / "data"
