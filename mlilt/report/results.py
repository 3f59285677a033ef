"""Reading ``mlilt eval`` result files: validation with errors naming the file and field, and per-part views."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

RECALL_KEYS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")
PROBE_KEYS = ("en->x@1", "x->en@1")
METRICS = ("R@1", "R@5", "R@10", "mean")
# Fields of a result file the report needs; dotted paths into the JSON object.
REQUIRED_FIELDS = ("mlilt_version", "task", "eval_set", "protocol", "results", "run", "run.name", "run.strategy",
                   "run.text_model", "run.vision_model", "run.percent_trainable", "run.seed")


class ResultFileError(ValueError):
    """A result file that cannot be read or does not follow the result schema."""


@dataclasses.dataclass(frozen=True)
class ResultFile:
    """One ``mlilt eval`` result file, validated."""

    path: Path
    data: dict

    @property
    def run(self) -> dict:
        return self.data["run"]

    @property
    def results(self) -> dict:
        return self.data["results"]

    @property
    def text_probe(self) -> dict | None:
        return self.data.get("text_probe")

    @property
    def step(self) -> int | None:
        """The training step the model was scored at; None for files that do not record it."""
        return self.run.get("step")


def _field(data: dict, dotted: str):
    """The value at a dotted path, or raise KeyError naming the first missing part."""
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _percent(path: Path, where: str, value) -> float:
    """A percentage (0–100) or a ResultFileError naming the file and field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ResultFileError(f"{path}: field '{where}' must be a number, got {value!r}")
    if not 0 <= value <= 100:
        raise ResultFileError(f"{path}: field '{where}' = {value} is not a percentage in [0, 100]")
    return float(value)


def _check_metrics(path: Path, field: str, table, keys: tuple[str, ...]) -> None:
    """Every language entry of ``table`` holds every key in ``keys`` as a percentage."""
    if not isinstance(table, dict) or not table:
        raise ResultFileError(f"{path}: field '{field}' must be a non-empty object of languages, got {table!r}")
    for lang, metrics in table.items():
        if not isinstance(metrics, dict):
            raise ResultFileError(f"{path}: field '{field}.{lang}' must be an object, got {metrics!r}")
        for key in keys:
            if key not in metrics:
                raise ResultFileError(f"{path}: missing field '{field}.{lang}.{key}'")
            _percent(path, f"{field}.{lang}.{key}", metrics[key])


def load_result(path: str | Path) -> ResultFile:
    """Read and validate one result file; errors name the file and the field."""
    path = Path(path)
    if path.is_dir():
        raise ResultFileError(f"{path}: is a directory; pass the result JSON files")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such result file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultFileError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for dotted in REQUIRED_FIELDS:
        try:
            _field(data, dotted)
        except KeyError:
            raise ResultFileError(f"{path}: missing field '{dotted}'") from None
    if data["task"] != "retrieval":
        raise ResultFileError(f"{path}: field 'task' is {data['task']!r}; mlilt report reads 'retrieval' results")
    for dotted in ("eval_set", "protocol", "run.name", "run.strategy", "run.text_model", "run.vision_model"):
        if not isinstance(_field(data, dotted), str) or not _field(data, dotted):
            raise ResultFileError(f"{path}: field '{dotted}' must be a non-empty string, got {_field(data, dotted)!r}")
    _percent(path, "run.percent_trainable", data["run"]["percent_trainable"])
    seed = data["run"]["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ResultFileError(f"{path}: field 'run.seed' must be an integer or null, got {seed!r}")
    _check_metrics(path, "results", data["results"], RECALL_KEYS)
    if data.get("text_probe") is not None:
        _check_metrics(path, "text_probe", data["text_probe"], PROBE_KEYS)
    step = data["run"].get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ResultFileError(f"{path}: field 'run.step' must be a non-negative integer or null, got {step!r}")
    epoch = data["run"].get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or epoch < 0):
        raise ResultFileError(f"{path}: field 'run.epoch' must be a non-negative number or null, got {epoch!r}")
    _check_languages(path, data.get("languages"))
    return ResultFile(path, data)


def _check_languages(path: Path, languages) -> None:
    """The optional per-language information: names, resource measure, tier and images scored."""
    if languages is None:
        return
    if not isinstance(languages, dict):
        raise ResultFileError(f"{path}: field 'languages' must be an object of languages, got {languages!r}")
    for tag, info in languages.items():
        if not isinstance(info, dict):
            raise ResultFileError(f"{path}: field 'languages.{tag}' must be an object, got {info!r}")
        for key, kinds in (("code", str), ("name", str), ("cc100_gib", (int, float)), ("tier", int),
                           ("images", int)):
            value = info.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise ResultFileError(f"{path}: field 'languages.{tag}.{key}' must be "
                                      f"{'a string' if kinds is str else 'a number'} or null, got {value!r}")


def language_info(results: list[ResultFile]) -> dict[str, dict]:
    """Per language tag, what the files record about it (name, code, cc100_gib, tier, images); first file wins."""
    info: dict[str, dict] = {}
    for r in results:
        for tag, fields in (r.data.get("languages") or {}).items():
            merged = info.setdefault(tag, {})
            for key, value in fields.items():
                if merged.get(key) is None:
                    merged[key] = value
    return info


def load_results(paths) -> list[ResultFile]:
    """Read and validate result files, in the order given."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ResultFileError("no result files given")
    seen = set()
    for p in paths:
        if p.resolve() in seen:
            raise ResultFileError(f"{p}: given twice")
        seen.add(p.resolve())
    return [load_result(p) for p in paths]


def protocol_view(results: list[ResultFile], protocol: str) -> list[ResultFile]:
    """The files' numbers for one part of an averaged protocol (an emoji-XTD style) as result files of it."""
    out = []
    for r in results:
        parts = r.data.get("protocols") or {}
        if protocol not in parts:
            raise ResultFileError(f"{r.path}: missing field 'protocols.{protocol}' (this file has "
                                  f"{', '.join(parts) or 'no per-protocol results'})")
        data = {k: v for k, v in r.data.items() if k not in ("protocols", "averaged_over", "text_probe")}
        data.update(parts[protocol], protocol=protocol)
        _check_metrics(r.path, f"protocols.{protocol}.results", data["results"], RECALL_KEYS)
        out.append(ResultFile(r.path, data))
    return out
