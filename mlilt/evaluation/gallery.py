"""What a model retrieves for a few test captions, recorded in the result file for the report's gallery.

The captions are not picked by anyone: the targets are the images at evenly spaced positions of the
evaluated image list (the centre of each of ``QUERIES`` equal strata), and each language's query is
that image's first caption in the language. For each query the top ``TOP_K`` images are kept (names
and cosine scores), so ``mlilt report`` can draw them without torch (``mlilt.gallery``).

    >>> targets = pick_targets(465)              # [58, 174, 290, 406]
    >>> record([names[i] for i in targets], per_language, paths)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

QUERIES = 4
TOP_K = 5
RULE = (f"targets: the images at positions (2q+1)*N//(2*{QUERIES}), q = 0..{QUERIES - 1}, of the N evaluated "
        f"images; query: each target's first caption per language; top {TOP_K} by cosine score")


@dataclass
class Scored:
    """One language's scored captions: texts, each caption's image name, the image names and embeddings."""

    texts: list[str]
    caption_images: list[str]
    image_names: list[str]
    image_embeds: torch.Tensor
    text_embeds: torch.Tensor


def pick_targets(n: int, count: int = QUERIES) -> list[int]:
    """Evenly spaced positions in ``range(n)``, the centre of each of ``count`` strata."""
    count = min(count, n)
    return [(2 * q + 1) * n // (2 * count) for q in range(count)]


def record(targets: list[str], scored: dict[str, Scored], paths: dict[str, str], k: int = TOP_K) -> dict:
    """The ``gallery`` entry of a result file: per target, per language, the caption and its top-k images."""
    queries, used = [], set(targets)
    for target in targets:
        captions, top = {}, {}
        for lang, s in scored.items():
            if target not in s.caption_images:
                continue  # this language has no caption for the image
            row = s.caption_images.index(target)
            scores = s.image_embeds @ s.text_embeds[row]
            values, order = scores.topk(min(k, len(scores)))
            captions[lang] = s.texts[row]
            top[lang] = [[s.image_names[i], round(float(v), 5)] for v, i in zip(values, order.tolist())]
            used.update(name for name, _ in top[lang])
        queries.append({"target": target, "captions": captions, "top": top})
    return {"rule": RULE, "k": k, "queries": queries, "images": {name: paths[name] for name in sorted(used)}}


def merge(old: dict, new: dict, langs: list[str]) -> dict:
    """``new`` with the earlier entry's ``langs`` added back (same targets: same model and images)."""
    earlier = {q["target"]: q for q in old.get("queries", [])}
    queries = []
    for q in new["queries"]:
        before = earlier.get(q["target"], {})
        queries.append({"target": q["target"],
                        "captions": {**{k: v for k, v in before.get("captions", {}).items() if k in langs},
                                     **q["captions"]},
                        "top": {**{k: v for k, v in before.get("top", {}).items() if k in langs}, **q["top"]}})
    return {**new, "queries": queries, "images": {**old.get("images", {}), **new["images"]}}
