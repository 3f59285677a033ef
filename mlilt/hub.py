"""Hub ids as runs: ``ORG/NAME`` resolves through ``huggingface_hub.snapshot_download``.

Every command that takes a run (``mlilt eval``, ``mlilt search``, ``mlilt export``, ``mlilt.load``)
accepts a local directory or a hub id of a folder written by ``mlilt export``. The download honours
the usual variables: ``HF_HOME`` / ``HF_HUB_CACHE`` (where), ``HF_HUB_OFFLINE=1`` (cache only), ``HF_TOKEN``.

    >>> from mlilt.hub import resolve_run
    >>> resolve_run("runs/emoji-xtd/lilt_lwa-s0")      # a directory: itself
    >>> resolve_run("my-org/mlilt-emoji-lilt_lwa")      # a hub id: its snapshot in the HF cache
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# ORG/NAME as the hub spells repo ids (no leading dot or slash, one slash).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w][\w.-]{0,95}$")


def is_hub_id(value: str | os.PathLike) -> bool:
    """Whether ``value`` can be a hub repo id (and is not an existing local path)."""
    text = str(value)
    return bool(HUB_ID.match(text)) and not Path(text).expanduser().exists()


def resolve_run(value: str | os.PathLike) -> Path:
    """A local directory for ``value``: the path itself, or the hub snapshot of a repo id."""
    path = Path(value).expanduser()
    if path.exists() or not is_hub_id(value):
        return path
    return download(str(value))


def download(repo_id: str) -> Path:
    """The snapshot directory of ``repo_id`` (from the cache when offline); a one-line error otherwise."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, library_name="mlilt"))
    except LocalEntryNotFoundError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set and it is not in the HF cache" if offline else "not in the HF cache " \
              "and the hub is unreachable"
        raise FileNotFoundError(f"{repo_id}: neither a local directory nor a hub repo available here ({why}; "
                                f"cache: {_cache_dir()})") from err
    except (HfHubHTTPError, ValueError) as err:
        raise FileNotFoundError(f"{repo_id}: neither a local directory nor a downloadable hub repo "
                                f"({type(err).__name__}: {str(err).splitlines()[0]})") from err


def _cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE
