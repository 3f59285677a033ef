"""The global InfoNCE loss: its value, and its gradients with simulated processes (fake collectives).

All ranks are simulated in one process: the fake gather hands every simulated rank the *same* live
tensors, so one backward over the sum of the ranks' losses delivers to each rank's rows exactly
what the real all-gather's backward does (the sum over ranks of each rank's gradient). DDP then
averages the ranks' parameter gradients; for embeddings that are leaves that is the gradient of
rank r's rows divided by the number of ranks.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mlilt.train import loss as loss_mod
from mlilt.train.loss import contrastive_loss, gather_features


def features(n, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=g), dim=-1), F.normalize(torch.randn(n, dim, generator=g), dim=-1)


def clip_reference(image, text, scale):
    """CLIP's loss, written the usual way."""
    logits = scale * image @ text.t()
    labels = torch.arange(len(image))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def test_single_process_loss_is_clip_loss():
    image, text = features(6)
    scale = torch.tensor(1 / 0.07)
    expected = clip_reference(image, text, scale)
    torch.testing.assert_close(contrastive_loss(image, text, scale), expected)
    torch.testing.assert_close(contrastive_loss(image, text, scale, local_loss=True), expected)


def test_perfectly_aligned_pairs_give_a_small_loss_and_random_ones_about_log_n():
    image, _ = features(16, dim=64)
    assert contrastive_loss(image, image, torch.tensor(100.0)) < 1e-3
    a, b = features(512, dim=256, seed=1)
    assert abs(float(contrastive_loss(a, b, torch.tensor(1.0))) - math.log(512)) < 0.05


def test_loss_is_fp32_under_low_precision_features():
    image, text = features(4)
    out = contrastive_loss(image.bfloat16(), text.bfloat16(), torch.tensor(10.0))
    assert out.dtype == torch.float32


class FakeWorld:
    """Simulated ranks sharing live tensors: gather call ``k`` of any rank sees ``per_call[k]``, all ranks' rows."""

    def __init__(self, monkeypatch, per_call: list[list[torch.Tensor]]):
        self.per_call, self.rank, self.call = per_call, 0, 0
        self.rows = [t.shape[0] for t in per_call[0]]
        monkeypatch.setattr(loss_mod, "world", lambda: (self.rank, len(self.rows)))
        monkeypatch.setattr(loss_mod, "all_gather_counts", lambda n, device: list(self.rows))
        monkeypatch.setattr(loss_mod, "all_gather_with_grad", self.all_gather)

    def as_rank(self, rank):
        self.rank, self.call = rank, 0
        return self

    def all_gather(self, tensor):
        longest = max(self.rows)
        out = [tensor if r == self.rank else F.pad(t, (0, 0, 0, longest - t.shape[0]))
               for r, t in enumerate(self.per_call[self.call])]
        self.call += 1
        return out


@pytest.mark.parametrize("local_loss", [False, True])
@pytest.mark.parametrize("rows", [(4, 4), (3, 5), (2, 3, 3)])
def test_simulated_ranks_reproduce_single_process_loss_and_gradients(monkeypatch, local_loss, rows):
    total = sum(rows)
    image, text = features(total, seed=2)
    scale_value = 1 / 0.07

    # One process, the whole batch.
    img1, txt1 = image.clone().requires_grad_(), text.clone().requires_grad_()
    s1 = torch.tensor(scale_value, requires_grad=True)
    single = contrastive_loss(img1, txt1, s1)
    single.backward()

    # N simulated ranks; rank r holds rows [start_r, start_r + rows_r).
    starts = [sum(rows[:r]) for r in range(len(rows))]
    img = [image[s:s + n].clone().requires_grad_() for s, n in zip(starts, rows)]
    txt = [text[s:s + n].clone().requires_grad_() for s, n in zip(starts, rows)]
    scales = [torch.tensor(scale_value, requires_grad=True) for _ in rows]
    fake = FakeWorld(monkeypatch, [img, txt])
    losses = []
    for r in range(len(rows)):
        fake.as_rank(r)
        losses.append(contrastive_loss(img[r], txt[r], scales[r], local_loss=local_loss))
    torch.stack(losses).sum().backward()  # each rank's rows get the sum over ranks, as the real gather does

    n = len(rows)
    # The logged value (mean over ranks) is the global loss.
    torch.testing.assert_close(torch.stack(losses).mean(), single.detach(), rtol=1e-6, atol=1e-6)
    # DDP averages: rank r's rows carry sum-over-ranks gradients, divided by N they are the single-process ones.
    torch.testing.assert_close(torch.cat([g.grad for g in img]) / n, img1.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([g.grad for g in txt]) / n, txt1.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack([s.grad for s in scales]).mean(), s1.grad, rtol=1e-5, atol=1e-6)


def test_gather_features_drops_padding_and_reports_offset(monkeypatch):
    a, b = torch.ones(2, 4), torch.full((3, 4), 2.0)
    fake = FakeWorld(monkeypatch, [[a, b]])
    gathered_a, offset_a = gather_features(a)
    gathered_b, offset_b = gather_features(b) if fake.as_rank(1) else None
    assert (offset_a, offset_b) == (0, 2)
    torch.testing.assert_close(gathered_a, torch.cat([a, b]))
    torch.testing.assert_close(gathered_b, torch.cat([a, b]))
