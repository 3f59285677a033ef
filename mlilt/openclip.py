"""The open_clip interface, so tools built on it (CLIP_benchmark, …) run on an mlilt model.

    >>> import mlilt
    >>> model, preprocess_train, preprocess_val = mlilt.create_model_and_transforms("runs/lilt_lwa")
    >>> tokenizer = mlilt.get_tokenizer("runs/lilt_lwa")
    >>> tokens = tokenizer(["ein rotes Auto", "un chat"]).to(device)    # one object, as open_clip's
    >>> text = model.encode_text(tokens)                                # (2, D)
    >>> image = model.encode_image(preprocess_val(pil_image)[None])     # (1, D)
    >>> logits = model.logit_scale.exp() * image @ text.T

Differences from open_clip worth knowing: the tokenizer returns a ``BatchEncoding`` (input ids and
attention mask, which a BERT-style tower needs) rather than a tensor of ids; ``.to(device)`` works
on it as on a tensor. ``model.logit_scale`` is ``log(1 / temperature)`` as open_clip keeps it.
"""

from __future__ import annotations

import os

import torch
from torch import nn


class OpenCLIPModel(nn.Module):
    """A DualEncoder with open_clip's method names and conventions."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def encode_image(self, image: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        # mlilt's embeddings are L2-normalised already; normalising twice changes nothing.
        return self.model.encode_image(image)

    def encode_text(self, text, normalize: bool = True) -> torch.Tensor:
        return self.model.encode_text(text["input_ids"], text["attention_mask"])

    @property
    def logit_scale(self) -> torch.Tensor:
        """``log(1 / temperature)``: open_clip stores the log, callers take ``.exp()``."""
        return torch.log(self.model.logit_scale().detach())

    def forward(self, image=None, text=None):
        image_features = self.encode_image(image) if image is not None else None
        text_features = self.encode_text(text) if text is not None else None
        return image_features, text_features, self.logit_scale.exp()


class Tokenizer:
    """``tokenizer(texts)`` -> a BatchEncoding of ``input_ids`` and ``attention_mask`` (with ``.to``)."""

    def __init__(self, text_tower):
        self.tower = text_tower

    def __call__(self, texts: str | list[str], context_length: int | None = None):
        from transformers import BatchEncoding

        texts = [texts] if isinstance(texts, str) else list(texts)
        return BatchEncoding(self.tower.tokenize(texts))


def create_model_and_transforms(run: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(model, preprocess_train, preprocess_val)`` of a run, model directory or hub id, as open_clip's."""
    from mlilt.data.transforms import train_transform
    from mlilt.evaluation.harness import image_transform
    from mlilt.model import load

    model = load(run).eval().to(device)
    img_size = model.config.vision.img_size
    return OpenCLIPModel(model), train_transform(model.vision.data_config, img_size), image_transform(model)


def get_tokenizer(run: str | os.PathLike) -> Tokenizer:
    """The run's text tokenizer with open_clip's calling convention."""
    from mlilt.model import read_model_config, resolve_model_dir
    from mlilt.towers import TextTower

    config = read_model_config(resolve_model_dir(run))
    return Tokenizer(TextTower.from_config(config.text))
