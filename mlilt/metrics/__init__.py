"""Hugging Face ``evaluate`` metric modules shipped with mlilt (load them by path, no hub).

    >>> import evaluate
    >>> from mlilt.evaluation.retrieval import METRIC_PATH
    >>> evaluate.load(str(METRIC_PATH))          # mlilt/metrics/recall_at_k/recall_at_k.py
"""
