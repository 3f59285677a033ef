"""mlilt: multilingual low-resource alignment of vision to language (LilT, Khan & Fu, ICLR 2023).

    >>> import mlilt
    >>> model = mlilt.build_model(mlilt.ModelConfig(
    ...     text=mlilt.TextTowerConfig("bert-base-multilingual-cased"),
    ...     vision=mlilt.VisionTowerConfig("deit_base_patch16_224", img_size=256),
    ...     strategy="lilt_lwa"))
    >>> mlilt.count(model)["percent_trainable"]
"""

__version__ = "0.1.0"

from mlilt.model import DualEncoder, ModelConfig, build_model, load  # noqa: E402
from mlilt.strategies import PRESETS, Strategy, TowerPlan, apply, count, resolve  # noqa: E402
from mlilt.towers import TextTower, TextTowerConfig, VisionTower, VisionTowerConfig  # noqa: E402

__all__ = ["DualEncoder", "ModelConfig", "build_model", "load", "PRESETS", "Strategy", "TowerPlan", "apply",
           "count", "resolve", "TextTower", "TextTowerConfig", "VisionTower", "VisionTowerConfig"]
