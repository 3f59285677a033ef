"""Open images robustly and turn batches of image-caption records into model inputs.

    from mlilt.data.images import PairCollator, open_image
    img = open_image("photos/cat.jpg")           # PIL RGB, or ImageError naming the file and the reason
    collate = PairCollator(model.text.tokenize, train_transform(model.vision.data_config, 256))
    loader = DataLoader(pairs, batch_size=256, collate_fn=collate, num_workers=8)
    for batch in loader:
        if batch is None:                          # every image of the batch was unreadable
            continue
        skipped += batch["skipped"]                # survives worker processes, unlike collate.skipped

A record's ``image`` may be a file path, a PIL image, raw bytes, or the ``{"bytes", "path"}`` dict that
``datasets`` stores for an undecoded ``Image`` feature; all of them go through :func:`open_image`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from typing import Any, Callable, Sequence

from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

# White, not black: transparent regions of logos, emoji and icons are meant to be seen on a light page.
_BACKGROUND = (255, 255, 255)


class ImageError(ValueError):
    """An image that cannot be opened; the message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def describe(image: Any) -> str:
    """A short name for an image input, for messages: its path if it has one."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, dict):
        return str(image.get("path") or "<image bytes>")
    if isinstance(image, Image.Image):
        return getattr(image, "filename", "") or "<PIL image>"
    if isinstance(image, (bytes, bytearray)):
        return "<image bytes>"
    return f"<{type(image).__name__}>"


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def open_image(image: Any, draft: Callable[[tuple[int, int]], tuple[int, int]] | None = None) -> Image.Image:
    """A fully decoded RGB PIL image from a path, PIL image, bytes or datasets' {bytes, path} dict.

    ``draft`` maps a JPEG's (width, height) to the smallest size the caller needs
    (``mlilt.data.transforms.train_draft``); the JPEG is then decoded at the largest 1/2, 1/4 or 1/8
    scale that is at least that big (PIL ``draft``), which is several times cheaper.
    """
    name = describe(image)
    if isinstance(image, dict):
        data, path = image.get("bytes"), image.get("path")
        if data is None and not path:
            raise ImageError(name, "record has neither image bytes nor a path")
        image = data if data is not None else path
    try:
        if isinstance(image, Image.Image):
            img = image
        elif isinstance(image, (bytes, bytearray)):
            if not image:
                raise ImageError(name, "empty image data")
            img = Image.open(io.BytesIO(image))
        elif isinstance(image, (str, os.PathLike)):
            if not os.path.isfile(image):
                raise ImageError(name, "no such file" if not os.path.exists(image) else "not a regular file")
            img = Image.open(image)
        else:
            raise ImageError(name, f"cannot open an image from a {type(image).__name__}")
        if draft is not None and img.format == "JPEG":
            img.draft(img.mode, draft(img.size))
        img.load()  # decode now, so a truncated file fails here and not deep inside a transform
        return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(name, f"unreadable image ({type(err).__name__}: {err})") from None


def id_number(text: str) -> int:
    """A signed 64-bit number for an id string, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class PairCollator:
    """DataLoader ``collate_fn``: open, transform and stack images, tokenize captions, skip unreadable images.

    Returns ``{"pixels", "input_ids", "attention_mask", "skipped", "image_ids", "group_ids"}`` or ``None``
    when no image of the batch could be read. ``skipped`` (the batch's count) lets the training loop
    total skips across worker processes; ``collator.skipped`` totals them in the process that ran the
    collator. The ids, for positives by id, are :func:`id_number` of each kept record's ``image_id``
    and ``group`` (default: its image_id); records without an ``image_id`` (every loader of
    ``mlilt.data.pairs`` gives one) give a batch without ids.
    """

    def __init__(self, tokenize: Callable[[list[str]], dict], transform: Callable[[Image.Image], Any],
                 draft: Callable[[tuple[int, int]], tuple[int, int]] | None = None):
        self.tokenize = tokenize
        self.transform = transform
        self.draft = draft  # open_image's JPEG decode size for this transform
        self.skipped = 0
        self._warned: set[str] = set()

    def __call__(self, records: Sequence[dict]):
        import torch

        pixels, captions, image_ids, group_ids, skipped = [], [], [], [], 0
        for record in records:
            try:
                pixels.append(self.transform(open_image(record["image"], self.draft)))
            except ImageError as err:
                skipped += 1
                if err.source not in self._warned:  # once per file: a bad file recurs every epoch
                    self._warned.add(err.source)
                    # The loader prefetches: this batch may never be trained on, so only the loop counts skips.
                    logger.warning("loading data: skipping unreadable image %s (the run's end says how many were "
                                   "skipped in the steps trained)", err)
                continue
            captions.append(record["caption"])
            if record.get("image_id") is not None:
                image_ids.append(id_number(record["image_id"]))
                group_ids.append(id_number(record.get("group") or record["image_id"]))
        self.skipped += skipped
        if not pixels:
            return None
        tokens = self.tokenize(captions)
        batch = {"pixels": torch.stack(pixels), "input_ids": tokens["input_ids"],
                 "attention_mask": tokens["attention_mask"], "skipped": skipped}
        if len(image_ids) == len(pixels):
            batch["image_ids"] = torch.tensor(image_ids, dtype=torch.int64)
            batch["group_ids"] = torch.tensor(group_ids, dtype=torch.int64)
        return batch
