"""Evaluation: Recall@K (``retrieval``), evaluation sets (``sets``), the cross-lingual harness
(``harness``: images once, every language, text probe, embedding cache), train/eval leakage
(``leakage``), zero-shot classification (``zeroshot``) and their command line (``cli``).

    >>> import mlilt
    >>> mlilt.retrieval_recall(image_embeds, text_embeds, text_to_image)     # TR@1/5/10, IR@1/5/10, mean
    >>> from mlilt.evaluation.harness import evaluate_retrieval, load_for_eval
    >>> from mlilt.evaluation.sets import load_eval_set
    >>> evaluate_retrieval(load_for_eval("runs/x"), load_eval_set("xtd10", image_root="coco"), "1k")

Nothing here imports ``mlilt.train``: evaluating needs no trainer.
"""
