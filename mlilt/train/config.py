"""The training recipe's configuration: one dataclass, YAML files, command-line overrides.

Values come from, in increasing precedence: the dataclass defaults, a YAML file (``--config``), and
command-line flags. Every field is a flag named by its dotted path (``--lr 3e-4``,
``--model.strategy clip``, ``--model.vision.img_size 224``); ``-`` and ``_`` are interchangeable
(``--batch-size``). Values are parsed by the field's type: ``none``/``null`` sets an optional field to
None, booleans take ``true``/``false`` (a bare ``--resume`` means true), dicts take YAML/JSON
(``--model.vision.model_kwargs '{drop_path_rate: 0.1}'``).

    >>> config = parse_args(["--config", "recipes/configs/paper_mbert_deit.yaml", "--lr", "3e-4"])
    >>> config.model.strategy, config.lr
    ('lilt_lwa', 0.0003)
    >>> save_yaml(config, "runs/x/config.yaml"); load_yaml("runs/x/config.yaml") == config
    True

Nested fields merge: a file or a flag changes only the fields it names, the others keep the
defaults (the paper's). With ``--resume`` and no ``--config``, the run directory's own
``config.yaml`` is the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlilt.model import ModelConfig
from mlilt.towers import TextTowerConfig, VisionTowerConfig, check_tower_names

RUN_CONFIG_NAME = "config.yaml"
MIXED_PRECISION = ("no", "fp16", "bf16")
POSITIVES = ("group", "image", "none")


def paper_model() -> ModelConfig:
    """The paper's multilingual setting: mBERT-base + DeiT-B at 256 px, layerwise adapters."""
    return ModelConfig(text=TextTowerConfig("bert-base-multilingual-cased", max_length=30),
                       vision=VisionTowerConfig("deit_base_patch16_224", img_size=256),
                       embed_dim=256, strategy="lilt_lwa")


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the paper's hyper-parameters (LilT, §4)."""

    model: ModelConfig = field(default_factory=paper_model, metadata={
        "help": "Towers, embedding width and strategy (mlilt.ModelConfig)."})
    # ---- data
    train_data: str | None = field(default=None, metadata={
        "help": "Training pairs: manifest file, folder, glob or dataset path (mlilt.data.pairs.load_pairs)."})
    train_format: str = field(default="auto", metadata={
        "help": "auto|coco_karpathy|albef|jsonl|csv|hf_disk|parquet|imagefolder|webdataset."})
    image_root: str | None = field(default=None, metadata={
        "help": "Folder the manifest's image paths are relative to (default: the manifest's folder)."})
    train_split: str = field(default="train", metadata={
        "help": "Split to train on (Karpathy 'train' = train + restval)."})
    randaugment: bool = field(default=True, metadata={
        "help": "ALBEF's RandomAugment(2, 7) after the crop and flip (the paper's augmentation)."})
    num_workers: int = field(default=4, metadata={"help": "DataLoader worker processes per training process."})
    shuffle_buffer: int = field(default=10_000, metadata={
        "help": "Streamed sources (webdataset shards) only: pairs held in the shuffle buffer, on top of the "
                "shard shuffle (datasets' IterableDataset.shuffle); 0: read the shards in shuffled order only."})
    # ---- run
    run_dir: str = field(default="runs/align_english", metadata={
        "help": "RUN_DIR: config.yaml, metrics.jsonl, checkpoints/, model/."})
    seed: int = field(default=0, metadata={"help": "Seeds initialisation, data order, augmentation and dropout."})
    resume: bool = field(default=False, metadata={
        "help": "Continue from the latest complete checkpoint in run_dir (a fresh start if there is none)."})
    # ---- optimisation
    batch_size: int = field(default=512, metadata={
        "help": "Global batch: pairs per optimizer step over all processes and accumulation steps."})
    grad_accum_steps: int = field(default=1, metadata={
        "help": "Micro-batches per optimizer step; negatives come from one micro-batch (global over processes)."})
    epochs: int = field(default=15, metadata={"help": "Passes over the training pairs."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Optimizer steps to train; overrides epochs (the schedule spans them). None: epochs x steps/epoch."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    min_lr: float = field(default=1e-5, metadata={"help": "Learning rate at the end of the cosine decay."})
    warmup_steps: int = field(default=2000, metadata={
        "help": "Linear warm-up steps from warmup_lr to lr (ALBEF: 2000 iterations)."})
    warmup_lr: float = field(default=1e-5, metadata={"help": "Learning rate at step 0 of the warm-up (ALBEF)."})
    weight_decay: float = field(default=0.02, metadata={
        "help": "AdamW decoupled weight decay, on parameters with ndim >= 2 only (not biases, norms, temperature)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    max_grad_norm: float | None = field(default=None, metadata={
        "help": "Clip the global gradient norm to this value; None: no clipping (the paper does not clip)."})
    mixed_precision: str = field(default="no", metadata={
        "help": "no|fp16|bf16: autocast the towers; the loss and the trained parameters stay fp32."})
    cast_frozen_weights: bool = field(default=True, metadata={
        "help": "With bf16/fp16: store frozen Linear/Conv weights in that dtype (autocast computes with it "
                "anyway: same results, half their memory, no cast per step)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute tower activations in the backward pass (less memory, ~30% more compute)."})
    local_loss: bool = field(default=False, metadata={
        "help": "Each process scores its own rows against all columns (open_clip's local_loss); "
                "False: every process computes the full global loss. Same gradients, less compute."})
    positives: str = field(default="group", metadata={
        "help": "group|image|none: pairs sharing this id are positives of each other in the loss (ALBEF/BLIP), "
                "across processes. group: the data's group (emoji-XTD: the concept, its three styles), else "
                "the image; image: the image (COCO: its five captions); none: each pair alone (CLIP's loss, "
                "the committed reports before issue 20)."})
    # ---- logging and checkpoints
    log_every: int = field(default=10, metadata={"help": "Log metrics every this many optimizer steps."})
    save_every: int = field(default=1000, metadata={
        "help": "Checkpoint every this many optimizer steps, to resume from; the last step writes model/ only."})
    keep_checkpoints: int = field(default=3, metadata={"help": "Keep the last this many checkpoints (0: keep all)."})
    tensorboard: bool = field(default=True, metadata={
        "help": "Also log to TensorBoard when it is installed (metrics.jsonl is always written)."})
    # ---- evaluation during training
    eval_every: int = field(default=100, metadata={
        "help": "Score eval_set every this many optimizer steps, at the end of each epoch and at the last step "
                "(mlilt eval's harness, main process; logged as eval/<lang>/<metric>); 0: never."})
    eval_set: str | None = field(default=None, metadata={
        "help": "Set to score during training (a name, a set .yaml or a JSONL manifest); None: the training data's "
                "validation split, <train_data>-val (emoji-xtd -> emoji-xtd-val), or no evaluation if it has none."})
    eval_langs: str = field(default="en", metadata={"help": "Comma-separated languages of eval_set to score."})
    keep_best: str | None = field(default=None, metadata={
        "help": "Keep the model of the best evaluation by this metric in RUN_DIR/best/ (e.g. mean: over eval_langs, "
                "en/mean, en/IR@1); None: keep none."})
    # ---- divergence
    max_nonfinite_steps: int = field(default=3, metadata={
        "help": "A step whose loss or gradient norm is not finite is skipped (no update, counted); this many in a "
                "row stop the run, naming the last good checkpoint to --resume from (with a lower --lr)."})

    def validate(self) -> None:
        """Raise ValueError naming the field for values that cannot work."""
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"config field {name}: {why} (got {getattr(self, name)!r})")

        need(self.train_data is not None, "train_data",
             "no training data; pass --config recipes/configs/<file>.yaml or --train_data PATH")
        need(self.mixed_precision in MIXED_PRECISION, "mixed_precision", "must be one of " + "|".join(MIXED_PRECISION))
        need(self.positives in POSITIVES, "positives", "must be one of " + "|".join(POSITIVES))
        for name in ("batch_size", "grad_accum_steps", "epochs", "log_every", "save_every"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.batch_size % self.grad_accum_steps == 0, "batch_size", "must be divisible by grad_accum_steps")
        need(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1 or none")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.shuffle_buffer >= 0, "shuffle_buffer", "must be >= 0")
        need(self.keep_checkpoints >= 0, "keep_checkpoints", "must be >= 0")
        need(self.eval_every >= 0, "eval_every", "must be >= 0 (0: no evaluation)")
        need(self.max_nonfinite_steps >= 1, "max_nonfinite_steps", "must be >= 1")
        need(self.keep_best is None or self.eval_every >= 1, "keep_best",
             "needs evaluation during training (eval_every >= 1)")
        need(0 <= self.min_lr <= self.lr, "min_lr", "must be within [0, lr]")
        try:
            self.model.resolved_strategy()
        except ValueError as err:
            raise ValueError(f"config field model: {err}") from None
        check_tower_names(self.model.text.name_or_path, self.model.vision.name,
                          text_field="config field model.text.name_or_path", vision_field="config field model.vision.name")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- conversion between dicts and (nested) dataclasses ------------------------------------------

def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(tp) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def from_dict(cls, values: dict, where: str = "config", prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict, checking names and types; errors name ``where`` and the field."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: field {prefix.rstrip('.') or '(top level)'}: expected a mapping, "
                         f"got {values!r}")
    hints, fields = _hints(cls), {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {[prefix + u for u in unknown]}; "
                         f"known at this level: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        tp, optional = _optional_inner(hints[name])
        path = prefix + name
        if value is None and optional:
            kwargs[name] = None
        elif dataclasses.is_dataclass(tp):
            base = _default_of(fields[name])
            merged = _merge(dataclasses.asdict(base) if base is not None else {}, value, f"{where}: field {path}")
            kwargs[name] = from_dict(tp, merged, where, path + ".")
        else:
            kwargs[name] = _coerce(value, hints[name], f"{where}: field {path}")
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field (e.g. model.text.name_or_path) is missing
        raise ValueError(f"{where}: {prefix.rstrip('.') or cls.__name__}: {err}") from None


def _default_of(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _merge(base: dict, update: dict, where: str) -> dict:
    if not isinstance(update, dict):
        raise ValueError(f"{where}: expected a mapping, got {update!r}")
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value, f"{where}.{key}") if isinstance(out.get(key), dict) \
            and isinstance(value, dict) and key != "model_kwargs" else value
    return out


def _coerce(value, tp, where: str):
    """``value`` (from YAML or the command line) as type ``tp``; strings are parsed."""
    tp, optional = _optional_inner(tp)
    if isinstance(value, str) and optional and value.strip().lower() in ("none", "null", "~"):
        return None
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError("expected true or false")
                return low in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError("expected a string")
            return str(value)
        origin = typing.get_origin(tp) or tp
        if origin in (dict, list):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, origin):
                raise ValueError(f"expected a {origin.__name__}")
            return value
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err} (got {value!r})") from None
    return value


# ---- YAML ---------------------------------------------------------------------------------------

def load_yaml(path: str | Path) -> TrainConfig:
    """A TrainConfig from a YAML file; unknown or mistyped fields are errors naming the file."""
    return from_dict(TrainConfig, _read_yaml(path), where=str(path))


def _read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of config fields at the top level")
    return values


def save_yaml(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (field order kept) atomically."""
    from mlilt.model import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


# ---- command line -------------------------------------------------------------------------------

def _leaf_fields(cls, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, type, help) of every non-dataclass field, recursing into nested dataclasses."""
    out, hints = [], _hints(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _optional_inner(hints[f.name])
        if dataclasses.is_dataclass(tp):
            out += _leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, hints[f.name], f.metadata.get("help", "")))
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config`` and one flag per (nested) TrainConfig field to ``parser``."""
    parser.add_argument("--config", default=None, help="YAML file of config fields (recipes/configs/*.yaml).")
    defaults = _flatten(TrainConfig().to_dict())
    for name, tp, help_text in _leaf_fields(TrainConfig):
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        inner, _ = _optional_inner(tp)
        kwargs = dict(dest=name, default=argparse.SUPPRESS, metavar=_metavar(inner),
                      help=f"{help_text} [default: {defaults.get(name)!r}]".replace("%", "%%"))
        if inner is bool:
            kwargs.update(nargs="?", const="true")  # a bare --resume means true
        parser.add_argument(*flags, **kwargs)
    return parser


def build_parser(prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser with ``--config`` and one flag per TrainConfig field."""
    return add_config_arguments(argparse.ArgumentParser(prog=prog, description=description))


def _metavar(tp) -> str:
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR"}.get(tp, "YAML")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "model_kwargs":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def parse_args(argv: list[str] | None = None, prog: str | None = None,
               description: str | None = None) -> TrainConfig:
    """Defaults < ``--config`` YAML (or RUN_DIR/config.yaml on ``--resume``) < command-line flags."""
    return config_from_args(vars(build_parser(prog, description).parse_args(argv)))


def config_from_args(args: dict) -> TrainConfig:
    """A TrainConfig from parsed flags (``config`` plus dotted field names; other keys are ignored)."""
    config_file = args.get("config")
    fields = {name for name, _, _ in _leaf_fields(TrainConfig)}
    overrides = _unflatten({k: v for k, v in args.items() if k in fields})
    from_run = False
    if config_file is None and _coerce(args.get("resume", False), bool, "command line: field resume"):
        run_dir = args.get("run_dir", TrainConfig.__dataclass_fields__["run_dir"].default)
        saved = Path(run_dir) / RUN_CONFIG_NAME
        config_file, from_run = (saved, True) if saved.is_file() else (None, False)
    values = _read_yaml(config_file) if config_file else {}
    if from_run and "positives" not in values:
        values["positives"] = "none"  # a run saved before positives by id trained with `none`: resume it so
    base = from_dict(TrainConfig, values, where=str(config_file) if config_file else "config")
    merged = _merge(base.to_dict(), overrides, "command line")
    return from_dict(TrainConfig, merged, where="command line" if overrides else "config")
