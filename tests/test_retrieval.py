"""Recall@K: chunked computation against a brute-force sort, the pessimistic tie rule, the evaluate module."""

import pytest
import torch
import torch.nn.functional as F

import mlilt
from mlilt.evaluation.retrieval import METRIC_PATH, image_query_ranks, text_query_ranks, topk_accuracy


def brute_force(images, texts, t2i, ks=(1, 5, 10)):
    """Sort every query's candidates, ties ordered pessimistically (non-targets first), and look."""
    scores = (images @ texts.T).tolist()  # (N, T)
    t2i = t2i.tolist()

    def first_target_position(row, is_target):
        order = sorted(range(len(row)), key=lambda j: (-row[j], is_target(j)))
        return next(pos for pos, j in enumerate(order) if is_target(j))

    tr = [first_target_position(scores[i], lambda j, i=i: t2i[j] == i) for i in range(len(images))]
    ir = [first_target_position([scores[i][t] for i in range(len(images))], lambda i, t=t: i == t2i[t])
          for t in range(len(texts))]
    out = {f"TR@{k}": 100.0 * sum(r < k for r in tr) / len(tr) for k in ks}
    out.update({f"IR@{k}": 100.0 * sum(r < k for r in ir) / len(ir) for k in ks})
    out["mean"] = sum(out.values()) / len(out)
    return out


def random_set(n_images, captions_per_image, dim=8, seed=0, signal=1.0):
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n_images, dim, generator=g), dim=-1)
    t2i = torch.arange(n_images).repeat_interleave(captions_per_image)
    t2i = t2i[torch.randperm(len(t2i), generator=g)]  # captions not grouped by image
    texts = F.normalize(signal * images[t2i] + torch.randn(len(t2i), dim, generator=g), dim=-1)
    return images, texts, t2i


@pytest.mark.parametrize("captions_per_image", [1, 5])
@pytest.mark.parametrize("chunk_size", [3, 7, 10_000])
def test_matches_brute_force(captions_per_image, chunk_size):
    images, texts, t2i = random_set(40, captions_per_image, seed=captions_per_image)
    got = mlilt.retrieval_recall(images, texts, t2i, chunk_size=chunk_size)
    want = brute_force(images, texts, t2i)
    assert list(got) == ["TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean"]
    assert got == pytest.approx(want, abs=1e-9)
    assert 0 < got["IR@1"] < got["IR@10"] < 100  # neither trivial nor hopeless: the test means something


def test_unequal_caption_counts_and_numpy_inputs():
    images, texts, t2i = random_set(12, 1, seed=3)
    extra_images, extra_texts, _ = random_set(12, 1, seed=4)
    texts = torch.cat([texts, extra_texts[:5]])
    t2i = torch.cat([t2i, torch.tensor([0, 0, 3, 7, 11])])  # 1 to 3 captions per image
    assert mlilt.retrieval_recall(images.numpy(), texts.numpy(), t2i.numpy(), chunk_size=4) == \
        pytest.approx(brute_force(images, texts, t2i))


def test_ties_count_against_the_query():
    e = torch.eye(4)
    # Images 0 and 1 are identical: each text of theirs ties with the other image.
    images = torch.stack([e[0], e[0], e[2], e[3]])
    texts = torch.stack([e[0], e[0], e[2], e[3]])
    t2i = torch.arange(4)
    ranks = text_query_ranks(images, texts, t2i)
    assert ranks.tolist() == [1, 1, 0, 0]            # pessimistic: the tied competitor goes first
    # Image 0's caption ties with image 1's caption (a non-target) -> rank 1, for both.
    assert image_query_ranks(images, texts, t2i).tolist() == [1, 1, 0, 0]
    r = mlilt.retrieval_recall(images, texts, t2i, ks=(1, 2))
    assert r["IR@1"] == 50.0 and r["TR@1"] == 50.0 and r["IR@2"] == 100.0 and r["TR@2"] == 100.0
    # A collapsed model (all scores equal) gets nothing at k < number of candidates.
    flat = torch.ones(5, 3)
    assert mlilt.retrieval_recall(flat, flat, torch.arange(5), ks=(1, 4, 5)) == pytest.approx(
        {"TR@1": 0, "TR@4": 0, "TR@5": 100, "IR@1": 0, "IR@4": 0, "IR@5": 100, "mean": 100 / 3})
    # Several captions of the same image tying with each other do not count against it.
    images = torch.stack([e[0], e[1]])
    texts = torch.stack([e[0], e[0], e[1]])
    assert image_query_ranks(images, texts, torch.tensor([0, 0, 1])).tolist() == [0, 0]


def test_bad_inputs_are_clear_errors():
    images, texts, t2i = random_set(5, 1)
    with pytest.raises(ValueError, match="no caption"):
        mlilt.retrieval_recall(images, texts[:4], t2i[:4])
    with pytest.raises(ValueError, match="outside"):
        mlilt.retrieval_recall(images, texts, torch.tensor([0, 1, 2, 3, 9]))
    with pytest.raises(ValueError, match="one image index per text"):
        mlilt.retrieval_recall(images, texts, t2i[:3])
    with pytest.raises(ValueError, match="NaN"):
        mlilt.retrieval_recall(images, texts * float("nan"), t2i)


def test_topk_accuracy_clips_k_and_is_pessimistic():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    top = topk_accuracy(scores, torch.tensor([0, 1, 0]), ks=(1, 2, 5))  # ranks 0, 1 (tie), 2
    assert top == {1: pytest.approx(100 / 3), 2: pytest.approx(200 / 3), 5: 100.0}


def test_evaluate_module_gives_the_same_numbers():
    import evaluate

    assert (METRIC_PATH / "recall_at_k.py").is_file()
    metric = evaluate.load(str(METRIC_PATH))
    images, texts, t2i = random_set(30, 5, seed=7)
    got = metric.compute(text_embeds=texts.numpy(), text_to_image=t2i.numpy(), image_embeds=images.numpy(),
                         chunk_size=16)
    assert got == pytest.approx(mlilt.retrieval_recall(images, texts, t2i))
    # Batches added incrementally give the same result.
    metric.add_batch(text_embeds=texts[:50].tolist(), text_to_image=t2i[:50].tolist())
    metric.add_batch(text_embeds=texts[50:].tolist(), text_to_image=t2i[50:].tolist())
    assert metric.compute(image_embeds=images.tolist()) == pytest.approx(got)
