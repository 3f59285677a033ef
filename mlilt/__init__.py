"""mlilt: multilingual low-resource alignment of vision to language (LilT, Khan & Fu, ICLR 2023).

    >>> import mlilt
    >>> model = mlilt.build_model(mlilt.ModelConfig(
    ...     text=mlilt.TextTowerConfig("bert-base-multilingual-cased"),
    ...     vision=mlilt.VisionTowerConfig("deit_base_patch16_224", img_size=256),
    ...     strategy="lilt_lwa"))
    >>> mlilt.count(model)["percent_trainable"]
"""

import importlib
import importlib.util

__version__ = "0.1.0"

from mlilt.torch_pair import check as _check_torch_pair  # noqa: E402

# Before anything imports torchvision (transformers does): a mismatched pair fails there without naming the cause.
_check_torch_pair()

# Public names and their modules, imported on first use (PEP 562) so that torch-free parts such as
# ``mlilt.report`` do not pay for (or require) torch.
_EXPORTS = {
    "DualEncoder": "mlilt.model", "ModelConfig": "mlilt.model", "build_model": "mlilt.model", "load": "mlilt.model",
    "PRESETS": "mlilt.strategies", "Strategy": "mlilt.strategies", "TowerPlan": "mlilt.strategies",
    "apply": "mlilt.strategies", "count": "mlilt.strategies", "resolve": "mlilt.strategies",
    "TextTower": "mlilt.towers", "TextTowerConfig": "mlilt.towers",
    "VisionTower": "mlilt.towers", "VisionTowerConfig": "mlilt.towers",
    "retrieval_recall": "mlilt.evaluation.retrieval",
    "create_model_and_transforms": "mlilt.openclip", "get_tokenizer": "mlilt.openclip",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mlilt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
