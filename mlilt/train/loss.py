"""Symmetric InfoNCE over the global batch (CLIP's loss; LilT eq. 1), with a gradient-carrying gather.

Every process embeds its own micro-batch; :func:`gather_features` concatenates the embeddings of all
processes in rank order with ``torch.distributed.nn.functional.all_gather``, whose backward hands
each process the gradient of its own rows summed over all processes (``accelerator.gather`` carries
no gradient). Then, with ``N`` processes, global batch ``G``, and the global loss
``L = 1/2 (CE(s I T^T, labels) + CE(s T I^T, labels))`` averaged over the ``G`` rows:

* **full global loss** (default): each process computes the same ``L`` on all ``G x G`` logits.
  Process ``r``'s rows receive ``sum over processes of dL/d(rows_r) = N dL/d(rows_r)``, so its
  parameter gradient is ``N`` times its rows' share of ``dL/dtheta``; DDP *averages* over processes:
  ``1/N sum_r N share_r = dL/dtheta``, exactly the single-process gradient on the concatenated batch.
  The temperature's gradient is the full ``dL/ds`` on every process; its average is the same.
* **local loss** (``local_loss=True``, open_clip's variant): process ``r`` scores only its ``B`` rows
  against all ``G`` columns, in both directions, summed over its rows and divided by ``G / N`` (its
  mean when all processes hold ``B = G / N`` rows). The ``N`` local losses sum to ``N L``, so the
  same argument gives ``dL/dtheta`` after DDP averaging, with ``B x G`` instead of ``G x G`` logits
  per process. The logged value is then the mean over processes.

So neither variant needs a correction factor under DDP's gradient *averaging*. (Summing gradients
over processes instead would make them ``N`` times too large; a gather whose backward kept only the
local slot, without the sum, ``N`` times too small.) ``tests/test_train.py`` checks both variants
against one process on the concatenated batch. The loss is computed in fp32 whatever
the towers' autocast dtype, and processes may hold different numbers of rows (an unreadable image
is dropped from its batch): rows are padded for the collective and the padding is removed.

**Positives by id** (``ids=``, one integer per pair: its image's, or its group's, see
``mlilt.data.images.PairCollator``): a batch may hold one image (COCO: five captions) or one concept
(emoji-XTD: three styles) more than once. As in ALBEF and BLIP, every column whose id equals the row's
is a positive and the row's target spreads evenly over them (``pos / pos.sum(1)``); the ids are
gathered with the features, so a duplicate on another process counts too. Without ids each pair is
its own only positive: CLIP's loss, computed exactly as before.

    >>> image, text = model.encode_image(pixels), model.encode_text(ids, mask)
    >>> loss = contrastive_loss(image, text, model.logit_scale())          # one process or many
    >>> loss = contrastive_loss(image, text, model.logit_scale(), ids=batch["group_ids"])
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_counts(n: int, device: torch.device) -> list[int]:
    """Every process's row count, in rank order."""
    _, size = world()
    mine = torch.tensor([n], device=device)
    counts = [torch.zeros_like(mine) for _ in range(size)]
    dist.all_gather(counts, mine)
    return [int(c) for c in counts]


def all_gather_with_grad(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every process's ``tensor`` (same shape everywhere); the backward sums each slot's gradient over processes."""
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        # Deprecated in favour of a private API (_functional_collectives); it still works and is tested here.
        warnings.simplefilter("ignore", FutureWarning)
        return list(all_gather(tensor.contiguous()))


def all_gather_ids(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every process's ``tensor`` (same shape everywhere), without gradient: for ids."""
    _, size = world()
    pieces = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(pieces, tensor.contiguous())
    return pieces


def gather_features(features: torch.Tensor, *, differentiable: bool = True) -> tuple[torch.Tensor, int]:
    """All processes' rows concatenated in rank order, differentiable; and where this process's rows start.

    Processes may hold different numbers of rows: each pads to the largest, gathers, and the
    padding is dropped again, so the result has exactly the sum of the rows. ``differentiable=False``
    gathers ids (integers, no gradient) with a plain all-gather.
    """
    rank, size = world()
    if size == 1:
        return features, 0
    counts = all_gather_counts(features.shape[0], features.device)
    longest = max(counts)
    missing = longest - features.shape[0]
    padded = F.pad(features, (0, 0) * (features.dim() - 1) + (0, missing)) if missing else features
    pieces = (all_gather_with_grad if differentiable else all_gather_ids)(padded)
    return torch.cat([piece[:n] for piece, n in zip(pieces, counts)]), sum(counts[:rank])


def info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
             all_image: torch.Tensor, all_text: torch.Tensor, offset: int = 0,
             rows: float | None = None, all_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric cross-entropy of ``image`` rows against ``all_text`` and ``text`` rows against ``all_image``.

    Row ``i`` of ``image``/``text`` is pair ``offset + i`` of the gathered batch; pass the gathered
    tensors themselves (offset 0) for the full loss. The summed row losses are divided by ``rows``
    (default: this call's number of rows, i.e. the mean). ``all_ids`` (the gathered batch's ids):
    each row's target is spread evenly over the pairs sharing its id; None: pair ``offset + i`` alone.
    """
    image, text = image.float(), text.float()
    all_image, all_text = all_image.float(), all_text.float()
    scale = logit_scale.float()
    labels = torch.arange(offset, offset + image.shape[0], device=image.device)
    if all_ids is not None:
        positives = (all_ids[labels].unsqueeze(1) == all_ids.unsqueeze(0)).float()
        labels = positives / positives.sum(1, keepdim=True)  # probabilities: cross_entropy's soft targets
    logits_per_image = scale * image @ all_text.t()
    logits_per_text = scale * text @ all_image.t()
    total = (F.cross_entropy(logits_per_image, labels, reduction="sum")
             + F.cross_entropy(logits_per_text, labels, reduction="sum"))
    return total / (2 * (rows if rows is not None else image.shape[0]))


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, *,
                     local_loss: bool = False, ids: torch.Tensor | None = None) -> torch.Tensor:
    """LilT eq. 1 over the global batch of all processes (see the module docstring for the gradients).

    ``ids``: one integer per row of this process; pairs with equal ids, on any process, are positives.
    """
    all_image, offset = gather_features(image)
    all_text, _ = gather_features(text)
    all_ids = None
    if ids is not None:
        if ids.shape != image.shape[:1]:
            raise ValueError(f"ids: expected one per pair ({image.shape[0]}), got shape {tuple(ids.shape)}")
        all_ids, _ = gather_features(ids.to(image.device), differentiable=False)
    if local_loss:
        # Rows may differ between processes: divide by G / N, not by this process's rows, so that the
        # mean over processes (what DDP's averaging optimises) is exactly the global mean.
        _, size = world()
        return info_nce(image, text, logit_scale, all_image, all_text, offset, rows=all_image.shape[0] / size,
                        all_ids=all_ids)
    return info_nce(all_image, all_text, logit_scale, all_image, all_text, 0, all_ids=all_ids)
