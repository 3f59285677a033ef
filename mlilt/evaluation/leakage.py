"""Train/eval leakage: which evaluation images a run saw in training (by COCO id or file name).

    >>> from mlilt.evaluation.leakage import training_source, training_image_keys, overlapping
    >>> source = training_source("runs/lilt_lwa")      # train_data / train_format / image_root of config.yaml
    >>> keys = training_image_keys(**source)            # {"COCO_train2014_000000061844.jpg", "coco:61844", ...}
    >>> overlapping(eval_set.images("1k"), keys)        # positions of eval images seen in training

Why it matters: 800 of XTD10's 1000 images are COCO train2014 images, so a model trained on COCO
(Karpathy train + restval, or ALBEF's coco.json) has seen most of them with their English captions.

An image is identified by its file name and, for COCO, by ``coco:<id>`` (from ``COCO_train2014_…``
names, 2017-style ``000000061844.jpg`` names or ALBEF ``coco_61844`` ids): ``mlilt.data.image_keys.image_keys``.
Plain numeric ids of other datasets are not keys (they mean nothing outside their dataset).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

RUN_CONFIG = "config.yaml"
_SOURCE_FIELDS = ("train_data", "train_format", "image_root", "train_split")


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """RUN_DIR/config.yaml as a dict ({} when the directory has none)."""
    import yaml

    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return {}
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return values


def _find_fields(config: dict, fields: tuple[str, ...]) -> dict:
    """``fields`` at the top level of a recipe config, else in the first nested section that has them."""
    if any(f in config for f in fields):
        return {f: config.get(f) for f in fields if f in config}
    for value in config.values():
        if isinstance(value, dict) and any(f in value for f in fields):
            return {f: value.get(f) for f in fields if f in value}
    return {}


def training_source(run_dir: str | os.PathLike) -> dict | None:
    """``{"train_data", "train_format", "image_root", "split"}`` recorded in a run's config.yaml, or None."""
    found = _find_fields(read_run_config(run_dir), _SOURCE_FIELDS)
    if not found.get("train_data"):
        return None
    return {"train_data": str(found["train_data"]), "train_format": found.get("train_format") or "auto",
            "image_root": found.get("image_root"), "split": found.get("train_split") or "train"}


def training_image_keys(train_data: str, train_format: str = "auto", image_root: str | None = None,
                        split: str = "train", progress: bool = True) -> set[str]:
    """Every identity key of the images in a training source (read with ``mlilt.data.pairs.load_pairs``)."""
    import datasets

    from mlilt.data.image_keys import image_keys
    from mlilt.data.pairs import load_pairs

    pairs = load_pairs(train_data, format=train_format, image_root=image_root, split=split, decode=False)
    if isinstance(pairs, datasets.Dataset):
        if isinstance(pairs.features["image"], datasets.Value):
            images = pairs["image"]
        else:
            # Embedded images: read only their stored paths from Arrow, not the bytes.
            column = pairs.data.column("image").combine_chunks()
            images = column.field("path").to_pylist() if hasattr(column, "field") else [None] * len(pairs)
        records = zip(images, pairs["image_id"])
    else:
        records = ((row.get("image"), row.get("image_id")) for row in pairs)
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, desc="training images", unit="pair", mininterval=1.0)
    keys: set[str] = set()
    seen: set = set()
    for image, image_id in records:
        # Several captions per image: derive each image's keys once.
        marker = (image if isinstance(image, str) else None, image_id)
        if marker[0] is not None and marker in seen:
            continue
        seen.add(marker)
        keys |= image_keys({"image": image, "image_id": image_id})
    return keys


def eval_image_keys(name: str, path: str | None = None) -> set[str]:
    """Identity keys of one evaluation image, from its name in the set and its file path."""
    from mlilt.data.image_keys import image_keys

    return image_keys({"image": name}) | (image_keys({"image": path}) if path else set())


def overlapping(eval_images: Iterable, train_keys: set[str]) -> list[int]:
    """Positions of the evaluation images (``EvalImage``) whose keys occur in ``train_keys``."""
    return [i for i, image in enumerate(eval_images) if eval_image_keys(image.name, image.path) & train_keys]
