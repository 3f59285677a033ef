"""Training: align the two towers contrastively on image-caption pairs (LilT, eq. 1).

    config.py      TrainConfig (the paper's hyper-parameters as defaults), YAML files, command-line flags
    loss.py        symmetric InfoNCE over the global batch, gradient-carrying all-gather
    batches.py     seeded, resumable data order and augmentation seeds
    loop.py        the Accelerate loop: DDP, mixed precision, accumulation, clipping, logging
    checkpoint.py  atomic checkpoints of the trained part only, resume, the final model
    tracking.py    the metrics.jsonl tracker
    validation.py  evaluation during training (mlilt eval's harness), the best model (RUN_DIR/best/)

    >>> from mlilt.train import parse_args, train
    >>> run_dir = train(parse_args(["--config", "recipes/configs/paper_mbert_deit.yaml"]))
"""

import importlib

# Imported on first use (PEP 562), like mlilt's own exports.
_EXPORTS = {"TrainConfig": "mlilt.train.config", "load_yaml": "mlilt.train.config",
            "parse_args": "mlilt.train.config", "save_yaml": "mlilt.train.config", "train": "mlilt.train.loop"}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlilt.train' has no attribute {name!r}")
