"""Recall@K for image-text retrieval, as the paper reports it (percent), computed in chunks.

    >>> import mlilt
    >>> scores = mlilt.retrieval_recall(image_embeds, text_embeds, text_to_image)   # (N, D), (T, D), (T,)
    >>> scores["TR@1"], scores["IR@10"], scores["mean"]

* **Text retrieval (TR, image -> text)**: each image queries all captions; a hit at K when *any* of
  its captions is among the top K.
* **Image retrieval (IR, text -> image)**: each caption queries all images; a hit at K when its image
  is among the top K.
* ``mean`` is the mean of the six numbers (TR@1/5/10, IR@1/5/10), the paper's "mean recall".

Scores are dot products of the embeddings as given: pass L2-normalised embeddings for cosine
similarity (``DualEncoder.encode_*`` return them so).

**Ties are pessimistic**: a competitor whose score *equals* the best ground truth's ranks ahead of
it. The rank of a query's ground truth is the number of non-ground-truth candidates scoring at least
as high, and a hit at K means rank < K. This is deterministic, independent of candidate order and of
``torch.topk``'s tie order, and a constant (collapsed) model scores 0 instead of whatever index order
would hand it.

Memory: never more than ``chunk_size x max(N, T)`` scores (plus a boolean mask of the same shape)
exist at once, so 25k captions x 5k images run in a few hundred MB.

The same numbers as a Hugging Face ``evaluate`` module (local, no hub)::

    >>> import evaluate
    >>> metric = evaluate.load(str(METRIC_PATH))
    >>> metric.compute(text_embeds=T, text_to_image=t2i, image_embeds=I)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

KS = (1, 5, 10)
DEFAULT_CHUNK_SIZE = 512

#: the local ``evaluate`` metric module (``evaluate.load(str(METRIC_PATH))``)
METRIC_PATH = Path(__file__).resolve().parents[1] / "metrics" / "recall_at_k"


def _as_tensor(x, name: str, dtype=torch.float32) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return t.detach().to(dtype)


def _check_inputs(image_embeds, text_embeds, text_to_image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = _as_tensor(image_embeds, "image_embeds")
    texts = _as_tensor(text_embeds, "text_embeds").to(images.device)
    t2i = _as_tensor(text_to_image, "text_to_image", torch.long).to(images.device)
    if images.ndim != 2 or texts.ndim != 2:
        raise ValueError(f"image_embeds and text_embeds must be 2-D (count, dim); got shapes "
                         f"{tuple(images.shape)} and {tuple(texts.shape)}")
    if images.shape[1] != texts.shape[1]:
        raise ValueError(f"embedding widths differ: images {images.shape[1]}, texts {texts.shape[1]}")
    if t2i.ndim != 1 or len(t2i) != len(texts):
        raise ValueError(f"text_to_image must give one image index per text: {len(texts)} texts, "
                         f"text_to_image of shape {tuple(t2i.shape)}")
    if len(images) == 0 or len(texts) == 0:
        raise ValueError("retrieval needs at least one image and one text")
    if int(t2i.min()) < 0 or int(t2i.max()) >= len(images):
        raise ValueError(f"text_to_image holds indices outside [0, {len(images)}): "
                         f"min {int(t2i.min())}, max {int(t2i.max())}")
    for name, t in (("image_embeds", images), ("text_embeds", texts)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    captioned = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    captioned[t2i] = True
    if not captioned.all():
        missing = (~captioned).nonzero().flatten()
        raise ValueError(f"{len(missing)} image(s) have no caption (first: index {int(missing[0])}); "
                         "text retrieval is undefined for them: drop them first")
    return images, texts, t2i


def text_query_ranks(image_embeds, text_embeds, text_to_image,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Rank of each text's image among all images (0 = first), ties pessimistic; shape (T,)."""
    images, texts, t2i = _check_inputs(image_embeds, text_embeds, text_to_image)
    return _text_query_ranks(images, texts, t2i, chunk_size)


def image_query_ranks(image_embeds, text_embeds, text_to_image,
                      chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Rank of each image's best caption among all captions (0 = first), ties pessimistic; shape (N,)."""
    images, texts, t2i = _check_inputs(image_embeds, text_embeds, text_to_image)
    return _image_query_ranks(images, texts, t2i, chunk_size)


def _text_query_ranks(images, texts, t2i, chunk_size) -> torch.Tensor:
    ranks = torch.empty(len(texts), dtype=torch.long, device=images.device)
    for start in range(0, len(texts), chunk_size):
        scores = texts[start:start + chunk_size] @ images.T                  # (chunk, N)
        target = scores.gather(1, t2i[start:start + chunk_size, None])      # (chunk, 1)
        # Every image scoring >= the target counts ahead of it, except the target itself.
        ranks[start:start + chunk_size] = (scores >= target).sum(1) - 1
    return ranks


def _image_query_ranks(images, texts, t2i, chunk_size) -> torch.Tensor:
    ranks = torch.empty(len(images), dtype=torch.long, device=images.device)
    for start in range(0, len(images), chunk_size):
        stop = min(start + chunk_size, len(images))
        scores = images[start:stop] @ texts.T                                # (chunk, T)
        positive = t2i[None, :] == torch.arange(start, stop, device=images.device)[:, None]
        best = scores.masked_fill(~positive, float("-inf")).max(1, keepdim=True).values
        # Other captions of the same image never count against it; any other caption at >= does.
        ranks[start:stop] = ((scores >= best) & ~positive).sum(1)
    return ranks


def recall_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = KS) -> dict[int, float]:
    """Percent of queries whose rank is below k, for each k."""
    ranks = torch.as_tensor(ranks)
    return {k: 100.0 * int((ranks < k).sum()) / len(ranks) for k in ks}


def retrieval_recall(image_embeds, text_embeds, text_to_image, ks: Sequence[int] = KS,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """``TR@k`` (image -> text), ``IR@k`` (text -> image) for each k, and their ``mean``, in percent.

    ``image_embeds`` (N, D), ``text_embeds`` (T, D), ``text_to_image`` (T,) the image index of each
    text; any number of captions per image (at least one each). Tensors or arrays.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    images, texts, t2i = _check_inputs(image_embeds, text_embeds, text_to_image)
    tr = recall_from_ranks(_image_query_ranks(images, texts, t2i, chunk_size), ks)
    ir = recall_from_ranks(_text_query_ranks(images, texts, t2i, chunk_size), ks)
    out = {f"TR@{k}": tr[k] for k in ks}
    out.update({f"IR@{k}": ir[k] for k in ks})
    out["mean"] = sum(out.values()) / len(out)
    return out


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5),
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[int, float]:
    """Classification top-k accuracy in percent from (N, C) scores, ties pessimistic as above.

    ``k`` larger than the number of classes is clipped to it (so top-5 of 3 classes is 100).
    """
    scores, labels = _as_tensor(scores, "scores"), _as_tensor(labels, "labels", torch.long)
    ranks = torch.empty(len(labels), dtype=torch.long)
    for start in range(0, len(labels), chunk_size):
        chunk = scores[start:start + chunk_size]
        target = chunk.gather(1, labels[start:start + chunk_size, None])
        ranks[start:start + chunk_size] = (chunk >= target).sum(1) - 1
    return {k: 100.0 * int((ranks < min(k, scores.shape[1])).sum()) / len(ranks) for k in ks}
