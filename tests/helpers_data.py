"""Shared by the data tests: small images, JSONL manifests and webdataset shards on disk, a stand-in tokenizer."""

import io
import json
import tarfile

import torch
from PIL import Image

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)]
# A vision tower's data config (timm's resolve_data_config) for the transforms and the collator.
DATA_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.4, 0.3),
               "std": (0.2, 0.25, 0.5), "crop_pct": 0.875, "crop_mode": "center"}


def save_image(path, colour=(128, 64, 32), size=(20, 16), fmt=None):
    """A plain ``colour`` image written to ``path`` (its folders made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def image_bytes(colour, fmt="JPEG"):
    """The encoded bytes of a 12x12 ``colour`` image."""
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def write_jsonl(path, rows):
    """A JSONL manifest: each row a JSON object, or a string written as it is (blank, malformed)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_shard(path, samples):
    """A webdataset shard: for each (key, image bytes, caption), KEY.jpg and KEY.txt."""
    with tarfile.open(path, "w") as tar:
        for key, data, caption in samples:
            for name, payload in ((f"{key}.jpg", data), (f"{key}.txt", caption.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def fake_tokenize(texts):
    """A stand-in tokenizer: ids [caption length, 1], so a batch row names its caption."""
    ids = torch.tensor([[len(t), 1] for t in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
