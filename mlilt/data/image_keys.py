"""Image identity across datasets, for the train/eval leakage check: file names and COCO ids.

    >>> image_keys({"image": "train2014/COCO_train2014_000000061844.jpg"})
    {'COCO_train2014_000000061844.jpg', 'coco:61844'}
"""

from __future__ import annotations

import os
import re

IMAGE_SUFFIX = re.compile(r"\.(jpe?g|png|webp|gif|bmp|tiff?)$", re.IGNORECASE)

_COCO_FILE = re.compile(r"COCO_(?:train|val|test)20\d\d_0*(\d+)$", re.IGNORECASE)
_COCO_2017 = re.compile(r"^0*(\d+)$")  # COCO 2017 names: the 12-digit zero-padded id
_COCO_TAGGED = re.compile(r"^coco[_:\-]0*(\d+)$", re.IGNORECASE)  # ALBEF image_id: "coco_57870"


def coco_id(name: str) -> str | None:
    """The COCO image id in a file name or id: COCO_train2014_000000061844.jpg, 000000061844.jpg, coco_61844."""
    stem = IMAGE_SUFFIX.sub("", name.replace("\\", "/").rsplit("/", 1)[-1])
    for pattern in (_COCO_FILE, _COCO_TAGGED):
        if match := pattern.search(stem):
            return str(int(match.group(1)))
    if len(stem) == 12 and (match := _COCO_2017.match(stem)):
        return str(int(match.group(1)))
    return None


def image_keys(record: dict) -> set[str]:
    """Names that identify a record's image across datasets: its file name and ``coco:<id>`` if a COCO image.

    ``{"image": ".../COCO_train2014_000000061844.jpg", ...}`` -> ``{"COCO_train2014_000000061844.jpg",
    "coco:61844"}``; an ALBEF ``image_id`` ``"coco_61844"`` or a 2017 name ``000000061844.jpg`` gives
    ``coco:61844`` too. Plain ids such as ``"7"`` are not keys: they mean nothing outside their dataset.
    """
    from PIL import Image

    names = []
    image = record.get("image")
    if isinstance(image, (str, os.PathLike)):
        names.append(os.fspath(image))
    elif isinstance(image, dict) and image.get("path"):
        names.append(image["path"])
    elif isinstance(image, Image.Image) and getattr(image, "filename", ""):
        names.append(image.filename)
    if record.get("image_id") not in (None, ""):
        names.append(str(record["image_id"]))
    keys = set()
    for name in names:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if IMAGE_SUFFIX.search(base):
            keys.add(base)
        if (cid := coco_id(base)) is not None:
            keys.add(f"coco:{cid}")
    return keys
