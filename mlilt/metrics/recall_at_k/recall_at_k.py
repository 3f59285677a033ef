"""Recall@K for image-text retrieval (TR@k, IR@k, mean; percent) as a local ``evaluate`` metric.

    >>> import evaluate
    >>> from mlilt.evaluation.retrieval import METRIC_PATH
    >>> recall = evaluate.load(str(METRIC_PATH))
    >>> recall.compute(text_embeds=text_embeds, text_to_image=text_to_image, image_embeds=image_embeds)
    {'TR@1': ..., 'TR@5': ..., 'TR@10': ..., 'IR@1': ..., 'IR@5': ..., 'IR@10': ..., 'mean': ...}

One row per caption (``text_embeds``, ``text_to_image``: the index of its image); the images are the
candidates of image retrieval and go in as a keyword argument of ``compute``. The numbers come from
``mlilt.retrieval_recall`` (chunked; ties pessimistic); ``ks`` and ``chunk_size`` pass through.
"""

import datasets
import evaluate

from mlilt.evaluation.retrieval import DEFAULT_CHUNK_SIZE, KS, retrieval_recall

_DESCRIPTION = """Image-text retrieval Recall@K: text retrieval (image -> text; an image is a hit when any of
its captions is in the top K) and image retrieval (text -> image), K = 1, 5, 10, and their mean, in percent.
Scores are dot products of the given embeddings (pass L2-normalised embeddings for cosine similarity).
Ties count against the query (pessimistic)."""

_CITATION = """@inproceedings{khan2023lilt,
  title={Contrastive Alignment of Vision to Language Through Parameter-Efficient Transfer Learning},
  author={Khan, Zaid and Fu, Yun}, booktitle={ICLR}, year={2023}}"""

_KWARGS_DESCRIPTION = """
Args:
    text_embeds: (T, D) caption embeddings, one row per caption.
    text_to_image: (T,) index of each caption's image in ``image_embeds``.
    image_embeds: (N, D) image embeddings (keyword argument of ``compute``); every image needs a caption.
    ks: recall cut-offs, default (1, 5, 10).
    chunk_size: queries scored at once (memory: chunk_size x max(N, T) floats).
Returns:
    dict with TR@k, IR@k for each k and mean, in percent.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RecallAtK(evaluate.Metric):
    """Recall@K of image-text retrieval, delegating to ``mlilt.retrieval_recall``."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"text_embeds": datasets.Sequence(datasets.Value("float32")),
                                        "text_to_image": datasets.Value("int64")}))

    def _compute(self, text_embeds, text_to_image, image_embeds=None, ks=KS, chunk_size=DEFAULT_CHUNK_SIZE):
        if image_embeds is None:
            raise ValueError("recall_at_k needs image_embeds=... (the candidate images) in compute()")
        return retrieval_recall(image_embeds, text_embeds, text_to_image, ks=tuple(ks), chunk_size=chunk_size)
