"""Evaluation during training: score a set with ``mlilt eval``'s harness every few steps, keep the best model.

    RUN_DIR/metrics.jsonl     {"step": 100, "eval/en/mean": 31.2, "eval/en/TR@1": ..., "eval/mean": 31.2, "eval_s": 6.1}
    RUN_DIR/best/             model_config.json, trained.safetensors, trainer_state.json (step, metric, value)

The set defaults to the training data's validation split (``<train_data>-val``: ``emoji-xtd`` ->
``emoji-xtd-val``). The model is scored in memory on the main process, without the embedding cache
(every evaluation is a different model) and without the leakage check (a validation split is held
out by construction); the RNG is forked so that training with evaluation updates the weights exactly
as training without it. ``best/`` holds the best evaluation ever made in the run directory: a resumed
run compares against it.

    >>> validator = Validator.for_run(config, device)        # None: nothing to evaluate
    >>> values = validator.evaluate(model, step)             # {"eval/en/mean": ..., ...}
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mlilt.model import DualEncoder
from mlilt.train.checkpoint import BEST_MODEL_DIR, TRAINER_STATE_NAME, save_model_dir
from mlilt.train.config import TrainConfig

logger = logging.getLogger(__name__)

PREFIX = "eval/"
VALIDATION_SUFFIX = "-val"
RECALLS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")


def validation_set_name(config: TrainConfig) -> str | None:
    """``config.eval_set``, else the training data's validation split if it is a known set, else None."""
    from mlilt.evaluation.sets import available_eval_sets

    if config.eval_set:
        return config.eval_set
    name = f"{config.train_data}{VALIDATION_SUFFIX}"
    return name if name in available_eval_sets() else None


def metric_names(langs: list[str], probe: bool) -> list[str]:
    """Every metric an evaluation logs, without the ``eval/`` prefix (``mean``, ``en/mean``, ``ru/en->x@1``...)."""
    names = ["mean"] + [f"{lang}/{r}" for lang in langs for r in RECALLS]
    if probe:
        names += [f"{lang}/{p}" for lang in langs if lang != "en" for p in ("en->x@1", "x->en@1")]
    return names


def flatten_result(result: dict) -> dict[str, float]:
    """A retrieval result as flat metrics: ``<lang>/<recall>``, ``<lang>/<probe>`` and ``mean`` (over languages)."""
    values = {f"{lang}/{k}": float(v) for lang, scores in result["results"].items() for k, v in scores.items()}
    values.update({f"{lang}/{k}": float(v) for lang, probe in (result.get("text_probe") or {}).items()
                   for k, v in probe.items()})
    values["mean"] = sum(s["mean"] for s in result["results"].values()) / len(result["results"])
    return values


@dataclass
class Validator:
    """What to score during a run, and the best evaluation so far."""

    eval_set: object               # mlilt.evaluation.sets.EvalSet
    langs: list[str]
    every: int
    run_dir: Path
    opts: object                   # mlilt.evaluation.harness.EncodeOptions
    keep_best: str | None = None
    best_value: float | None = None

    @classmethod
    def for_run(cls, config: TrainConfig, device: torch.device) -> "Validator | None":
        """The run's validator, or None when ``eval_every`` is 0 or there is no set; bad names fail here, early."""
        from mlilt.evaluation.harness import EncodeOptions, check_image_files
        from mlilt.evaluation.sets import load_eval_set

        name = validation_set_name(config) if config.eval_every else None
        if name is None:
            if config.eval_every:
                logger.info("no evaluation during training: %s has no validation split (eval_set names a set)",
                            config.train_data)
            return None
        eval_set = load_eval_set(name)
        langs = [x.strip() for x in config.eval_langs.split(",") if x.strip()]
        try:
            langs = eval_set.select_languages(langs)
        except ValueError as err:
            raise ValueError(f"config field eval_langs: {err}") from None
        for protocol in eval_set.protocol_parts(eval_set.default_protocol) or [eval_set.default_protocol]:
            check_image_files(eval_set.images(protocol), f"config field eval_set: {eval_set.name}/{protocol}")
        known = metric_names(langs, probe=True)
        if config.keep_best is not None and config.keep_best not in known:
            raise ValueError(f"config field keep_best: {config.keep_best!r} is not a metric of the evaluation; "
                             f"one of {', '.join(known[:9])}, ... (<lang>/<metric> for eval_langs {','.join(langs)})")
        # Frozen weights stored in bf16/fp16 need autocast; bf16 autocast runs fp16 weights too.
        precision = "bf16" if config.mixed_precision != "no" else "fp32"
        opts = EncodeOptions(device=str(device), precision=precision, workers=0, cache=False, progress=False)
        validator = cls(eval_set, langs, config.eval_every, Path(config.run_dir), opts, config.keep_best)
        validator.best_value = validator.saved_best()
        return validator

    def due(self, step: int, epoch_ended: bool, last: bool) -> bool:
        return step % self.every == 0 or epoch_ended or last

    def evaluate(self, model: DualEncoder, step: int) -> dict[str, float]:
        """Score ``model`` (left in training mode) on the set; metrics prefixed ``eval/``, plus ``eval_s``."""
        from mlilt.evaluation.harness import LoadedModel, evaluate_retrieval

        start = time.perf_counter()
        loaded = LoadedModel(model, identity={"in_training": str(self.run_dir), "step": step},
                             run={"path": str(self.run_dir), "name": self.run_dir.name, "step": step})
        devices = [torch.device(self.opts.device)] if torch.device(self.opts.device).type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):  # the DataLoader draws a seed from the global RNG
                result = evaluate_retrieval(loaded, self.eval_set, None, self.langs, opts=self.opts, quiet=True)
        finally:
            model.train()
        values = {PREFIX + k: v for k, v in flatten_result(result).items()}
        values["eval_s"] = time.perf_counter() - start
        return values

    def is_best(self, values: dict[str, float]) -> bool:
        """Whether ``values`` beat the best so far by ``keep_best`` (recalls: higher is better); records it."""
        if self.keep_best is None:
            return False
        value = values[PREFIX + self.keep_best]
        if self.best_value is not None and value <= self.best_value:
            return False
        self.best_value = value
        return True

    def save_best(self, model: DualEncoder, step: int, values: dict[str, float]) -> Path:
        """``RUN_DIR/best/``: the model and which evaluation it won (main process, atomic)."""
        state = {"step": step, "metric": self.keep_best, "value": values[PREFIX + self.keep_best],
                 "eval_set": self.eval_set.name, "eval_langs": self.langs,
                 "metrics": {k: v for k, v in values.items() if k.startswith(PREFIX)}}
        return save_model_dir(model, self.run_dir, BEST_MODEL_DIR, state)

    def saved_best(self) -> float | None:
        """The value of the best evaluation already in ``RUN_DIR/best/`` (a resumed run), if it used this metric."""
        path = self.run_dir / BEST_MODEL_DIR / TRAINER_STATE_NAME
        if self.keep_best is None or not path.is_file():
            return None
        state = json.loads(path.read_text())
        if state.get("metric") != self.keep_best or state.get("eval_set") != self.eval_set.name:
            logger.warning("%s was chosen by %s on %s; this run keeps the best by %s on %s and replaces it",
                           path.parent, state.get("metric"), state.get("eval_set"), self.keep_best, self.eval_set.name)
            return None
        return float(state["value"])
