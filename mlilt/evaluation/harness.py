"""Cross-lingual retrieval evaluation: encode a set's images once, score every language, write one JSON.

    >>> from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval, write_result
    >>> from mlilt.evaluation.sets import load_eval_set
    >>> loaded = load_for_eval("runs/lilt_lwa")                       # a run or model directory
    >>> xtd = load_eval_set("xtd10", image_root="~/coco2014")
    >>> result = evaluate_retrieval(loaded, xtd, "lilt200", langs=["ru", "tr"])
    >>> result["results"]["ru"]["mean"], result["text_probe"]["ru"]["en->x@1"]
    >>> write_result(result, "runs/lilt_lwa/eval/xtd10_lilt200.json")

How it runs:

* Images are encoded **once** per (model, set, protocol, excluded images) and reused for every
  language; embeddings (fp32) are cached in ``mlilt_home()/cache/embeddings/<key>.safetensors``,
  the key hashing the model identity (sha256 of ``trained.safetensors`` + ``model_config``, or the
  preset config + seed), the image files, the transform and the precision. Captions are cached the
  same way, keyed by their text, so a second run of a language costs nothing and a new language only
  its captions.
* Batched, ``torch.inference_mode``, bf16 autocast where the hardware has native bf16 (CUDA with
  bf16, CPUs with AVX512-BF16/AMX): ``precision="auto"``. On CPUs without it, oneDNN emulates bf16
  and runs several times *slower* than fp32 (measured: 6.6x on an AVX2 EPYC), so auto picks fp32 there.
* Texts are sorted by length before batching (less padding), then put back in order.
* A protocol that **averages** others (emoji-XTD's ``all`` over its styles) scores each part as its own
  pool and writes their mean in ``results``/``text_probe``, the parts under ``protocols``.
* The **text probe** (knowledge conservation): cross-lingual text-only retrieval, each English
  caption against the same captions in language X (``en->x@1``) and back (``x->en@1``). It uses the
  text *tower's* pooled output before the projection, L2-normalised: the projection is trained on
  English only and is random for untrained presets, while the tower output is what the multilingual
  encoder knows -- so the probe measures how much of that a strategy kept (a locked tower scores
  exactly its base model). It needs a parallel set (line-aligned captions) with English.
* **Ties** in the scores count against the query (``mlilt.evaluation.retrieval``).
* Result files (averaging, merging with an earlier result, writing, the printed table) are
  ``mlilt.evaluation.results``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from mlilt.evaluation import gallery
# Callers import these from here too (mlilt eval, the recipes); they live with the result files.
from mlilt.evaluation.results import average_results, format_table, merge_previous, write_result  # noqa: F401
from mlilt.evaluation.retrieval import DEFAULT_CHUNK_SIZE, retrieval_recall
from mlilt.evaluation.languages import canonical
from mlilt.evaluation.languages import info as language_info
from mlilt.evaluation.sets import Captions, EvalImage, EvalSet
from mlilt.evaluation.sets.base import check_pool, is_language_code
from mlilt.paths import mlilt_home

PRECISIONS = ("auto", "bf16", "fp32")
RESULT_DIR = "eval"
PROBE_LANG = "en"


@dataclass
class EncodeOptions:
    """How to run the encoders."""

    device: str | None = None          # None: cuda if available, else cpu
    precision: str = "auto"            # auto | bf16 | fp32
    batch_size: int = 64               # images per forward
    text_batch_size: int = 256         # captions per forward
    workers: int = 0                   # DataLoader processes decoding images
    cache: bool = True                 # read/write the embedding cache
    progress: bool = True              # tqdm bars
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def torch_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def resolved_precision(self) -> str:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {'|'.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision != "auto":
            return self.precision
        return "bf16" if native_bf16(self.torch_device()) else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (not emulated through fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def describe_device(device: torch.device) -> dict:
    """What a result file records about the hardware: device, its model name, whether bf16 is native."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = _cpu_model_name()
    else:
        name = device.type
    return {"device": str(device), "device_name": name, "native_bf16": native_bf16(device)}


def _cpu_model_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# ----------------------------------------------------------------------------------------------------
# The model under evaluation


@dataclass
class LoadedModel:
    """A model ready to evaluate, with what identifies it (cache keys) and describes it (result files)."""

    model: torch.nn.Module
    identity: dict
    run: dict
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    train_source: dict | None = None  # what the run was trained on (its config.yaml), for the leakage check


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _base_fingerprint(path: str | None) -> dict | None:
    """Size and mtime of a local base-model file or directory's files, so a changed local base misses the cache."""
    if not path or not Path(path).exists():
        return None
    p = Path(path)
    files = [p] if p.is_file() else sorted(x for x in p.iterdir() if x.is_file())
    return {x.name: [x.stat().st_size, x.stat().st_mtime_ns] for x in files}


def _model_facts(model, cfg) -> dict:
    from mlilt.strategies import count

    c = count(model)
    return {"strategy": cfg.strategy, "resolved_strategy": model.strategy.to_dict() if model.strategy else None,
            "text_model": cfg.text.name_or_path, "vision_model": cfg.vision.name, "img_size": cfg.vision.img_size,
            "embed_dim": cfg.embed_dim, "total": c["total"], "trainable": c["trainable"],
            "percent_trainable": c["percent_trainable"]}


def load_for_eval(path: str | os.PathLike) -> LoadedModel:
    """A trained model from a run directory (final model, else latest checkpoint) or a model directory."""
    from mlilt.evaluation.leakage import RUN_CONFIG, read_run_config, training_source
    from mlilt.model import CONFIG_NAME, WEIGHTS_NAME, DualEncoder, resolve_model_dir

    from mlilt.hub import is_hub_id, resolve_run

    hub_id = str(path) if is_hub_id(path) else None
    path = resolve_run(path)
    model_dir = resolve_model_dir(path)
    run_dir = path
    if model_dir == path and not hub_id:  # a model directory: inside a run (model/, checkpoints/step_*/) or alone
        run_dir = next((p for p in (path.parent, path.parent.parent) if (p / RUN_CONFIG).is_file()), path)
    model = DualEncoder.load_trained(model_dir)
    cfg = model.config
    config = read_run_config(run_dir)
    source = training_source(run_dir)
    identity = {"trained_sha256": sha256_file(model_dir / WEIGHTS_NAME),
                "model_config": json.loads((model_dir / CONFIG_NAME).read_text()),
                "bases": [_base_fingerprint(cfg.text.name_or_path), _base_fingerprint(cfg.vision.weights)]}
    identity["model_config"].pop("mlilt_version", None)
    run = {"path": hub_id or str(run_dir.resolve()), "name": hub_id or run_dir.resolve().name,
           "checkpoint": os.path.relpath(model_dir.resolve(), run_dir.resolve()), "step": trained_step(model_dir),
           "epoch": trained_epochs(model_dir), **_model_facts(model, cfg), "seed": config.get("seed"),
           "train_data": source["train_data"] if source else None,
           "training": {k: config[k] for k in TRAINING_FIELDS if k in config} or None}
    # A hub snapshot is the HF cache's, not ours to write results into: they go to ./eval like a preset's.
    return LoadedModel(model, identity, run, run_dir=None if hub_id else run_dir, train_source=source)


TRAINER_STATE = "trainer_state.json"  # mlilt.train.checkpoint's name; evaluation/ does not import train/


# The run's settings a result records beside the model facts (config.yaml's keys): what a comparison must match.
TRAINING_FIELDS = ("lr", "positives", "epochs", "batch_size", "mixed_precision")


def trained_step(model_dir: Path) -> int | None:
    """The optimizer step a saved model was trained to (its trainer_state.json), or None (an exported model)."""
    state = _trainer_state(model_dir)
    try:
        return int(state["step"])
    except (ValueError, KeyError, TypeError):
        return None


def trained_epochs(model_dir: Path) -> float | None:
    """The epochs a saved model was trained for, fractional mid-epoch (its trainer_state.json), or None."""
    state = _trainer_state(model_dir)
    try:
        return round(int(state["epoch"]) + int(state["step_in_epoch"]) / int(state["steps_per_epoch"]), 4)
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        return None


def _trainer_state(model_dir: Path) -> dict:
    try:
        state = json.loads((Path(model_dir) / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def load_preset(preset: str, text: str, vision: str, *, img_size: int | None = None,
                vision_weights: str | None = None, embed_dim: int = 256, seed: int = 0,
                max_length: int = 30, pooling: str | None = None, vision_kwargs: dict | None = None) -> LoadedModel:
    """An untrained preset on base models; its projections (and adapters) are random, drawn with ``seed``."""
    from mlilt.model import ModelConfig, build_model
    from mlilt.towers import TextTowerConfig, VisionTowerConfig

    cfg = ModelConfig(text=TextTowerConfig(text, max_length=max_length, pooling=pooling),
                      vision=VisionTowerConfig(vision, weights=vision_weights, img_size=img_size,
                                               model_kwargs=dict(vision_kwargs or {})),
                      embed_dim=embed_dim, strategy=preset)
    torch.manual_seed(seed)
    model = build_model(cfg)
    identity = {"preset": cfg.to_dict(), "seed": seed,
                "bases": [_base_fingerprint(text), _base_fingerprint(vision_weights)]}
    run = {"path": None, "name": f"{preset} (untrained)", "checkpoint": None, **_model_facts(model, cfg),
           "seed": seed, "train_data": None, "untrained_preset": True}
    notes = [f"preset {preset!r} evaluated untrained on the base models: the projections are random "
             f"(seed {seed}), so image-text retrieval measures nothing learned; the text probe uses the "
             "text tower before the projection and is meaningful"]
    return LoadedModel(model, identity, run, notes=notes)


# ----------------------------------------------------------------------------------------------------
# Embedding cache


def cache_dir() -> Path:
    return mlilt_home() / "cache" / "embeddings"


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:40]


class EmbeddingCache:
    """Tensors by key in safetensors files; a miss (or a disabled cache) computes and stores."""

    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = Path(root) if root else cache_dir()
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def get_or_compute(self, parts: dict, compute: Callable[[], dict[str, torch.Tensor]]
                       ) -> tuple[dict[str, torch.Tensor], str]:
        """``(tensors, "hit" | "miss" | "off")``."""
        from safetensors.torch import load_file, save_file

        from mlilt.model import atomic_write

        if not self.enabled:
            return compute(), "off"
        key = cache_key(parts)
        path = self.path(key)
        if path.is_file():
            try:
                return load_file(path), "hit"
            except Exception as err:  # a truncated or foreign file: recompute rather than fail
                warnings.warn(f"{path}: unreadable embedding cache ({err}); recomputing")
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in compute().items()}
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {"key": json.dumps(parts, sort_keys=True, default=str)[:60000]}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
        return tensors, "miss"


# ----------------------------------------------------------------------------------------------------
# Encoding


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from mlilt.data.images import open_image

        return self.transform(open_image(self.paths[i]))


def image_transform(model):
    from mlilt.data.transforms import eval_transform

    return eval_transform(model.vision.data_config, model.config.vision.img_size if model.config else None)


def check_image_files(images: list[EvalImage], what: str) -> None:
    """Fail before encoding when image files are missing, naming a few and the count."""
    missing = [im.path for im in images if not os.path.isfile(im.path)]
    if missing:
        raise FileNotFoundError(f"{what}: {len(missing)} of {len(images)} image files not found, e.g. "
                                f"{', '.join(missing[:3])}; check --image-root / --data-dir")


def encode_images(model, paths: list[str], opts: EncodeOptions, transform=None) -> torch.Tensor:
    """L2-normalised fp32 image embeddings (N, D) through ``model.encode_image``, batched."""
    from tqdm.auto import tqdm

    device, precision = opts.torch_device(), opts.resolved_precision()
    loader = torch.utils.data.DataLoader(_ImageFiles(paths, transform or image_transform(model)),
                                         batch_size=opts.batch_size, num_workers=opts.workers,
                                         pin_memory=device.type == "cuda")
    out = []
    with torch.inference_mode(), autocast(device, precision):
        for pixels in tqdm(loader, desc="images", unit="batch", disable=not opts.progress or None):
            out.append(model.encode_image(pixels.to(device, non_blocking=True)).float().cpu())
    return torch.cat(out)


def encode_texts(model, texts: list[str], opts: EncodeOptions, *, pooled: bool = False,
                 desc: str = "texts") -> dict[str, torch.Tensor]:
    """``{"embeds"}`` (what ``model.encode_text`` gives) and with ``pooled`` also ``{"pooled"}``.

    ``pooled`` is the text tower's output before the projection, L2-normalised (the text probe). Both
    come from one tower forward: ``embeds = normalize(text_projection(pooled_raw))``, which is exactly
    ``model.encode_text``.
    """
    from tqdm.auto import tqdm

    device, precision = opts.torch_device(), opts.resolved_precision()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths -> less padding
    embeds, tower = [None] * len(texts), [None] * len(texts)
    starts = range(0, len(order), opts.text_batch_size)
    with torch.inference_mode(), autocast(device, precision):
        for start in tqdm(starts, desc=desc, unit="batch", disable=not opts.progress or None):
            idx = order[start:start + opts.text_batch_size]
            tokens = model.text.tokenize([texts[i] for i in idx], device=device)
            if pooled:
                raw = model.text(tokens["input_ids"], tokens["attention_mask"])
                emb = F.normalize(model.text_projection(raw).float(), dim=-1)
                pool = F.normalize(raw.float(), dim=-1).cpu()
            else:
                emb, pool = model.encode_text(tokens["input_ids"], tokens["attention_mask"]), None
            emb = emb.float().cpu()
            for j, i in enumerate(idx):
                embeds[i] = emb[j]
                if pool is not None:
                    tower[i] = pool[j]
    out = {"embeds": torch.stack(embeds)}
    if pooled:
        out["pooled"] = torch.stack(tower)
    return out


# ----------------------------------------------------------------------------------------------------
# Retrieval evaluation


def sha_lines(lines: list[str]) -> str:
    return hashlib.sha256("\0".join(lines).encode("utf-8")).hexdigest()


def _restrict(captions: Captions, keep: list[int]) -> tuple[Captions, list[int]]:
    """Captions of the kept images only, re-indexed; also the kept images that have a caption."""
    position = {old: new for new, old in enumerate(keep)}
    rows = [(t, position[i]) for t, i in zip(captions.texts, captions.image_index) if i in position]
    used = sorted({i for _, i in rows})
    compact = {old: new for new, old in enumerate(used)}
    return (Captions(captions.lang, [t for t, _ in rows], [compact[i] for _, i in rows], captions.source),
            [keep[i] for i in used])


def _leakage(images: list[EvalImage], train_source: dict | None, progress: bool) -> tuple[list[int] | None, str | None]:
    """Positions of eval images seen in training, or (None, why not)."""
    from mlilt.evaluation.leakage import overlapping, training_image_keys

    if not train_source:
        return None, "no training data recorded (RUN_DIR/config.yaml train_data, or --train-data)"
    try:
        keys = training_image_keys(train_source["train_data"], train_source.get("train_format") or "auto",
                                   train_source.get("image_root"), train_source.get("split") or "train",
                                   progress=progress)
    except (OSError, ValueError) as err:
        return None, f"could not read the training data {train_source['train_data']}: {err}"
    return overlapping(images, keys), None


def _say(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def evaluate_retrieval(loaded: LoadedModel, eval_set: EvalSet, protocol: str | None = None,
                       langs: list[str] | None = None, *, opts: EncodeOptions | None = None,
                       probe: bool = True, exclude_overlap: bool = False,
                       train_source: dict | None = None, quiet: bool = False, pool: str | None = None) -> dict:
    """Recall@1/5/10 per language (and the text probe) of a model on a set's protocol, as a result dict.

    ``langs``: codes in any form the set's files can be named by (``sw``, ``swh_Latn``, ``RU``), ``all``
    or tier keywords (``mlilt.evaluation.languages.resolve``); results are keyed by canonical tag.
    ``pool``: ``shared`` scores every language on the images all of them have captions for (the same
    images for all), ``own`` each on all it has; default: what the set says (``shared`` unless told).
    ``train_source`` (``{"train_data", "train_format", "image_root", "split"}``) defaults to what the
    run recorded it was trained on; the leakage check reads it.
    """
    from mlilt import __version__

    opts = opts or EncodeOptions()
    train_source = train_source or loaded.train_source
    protocol = eval_set.check_protocol(protocol)
    parts = eval_set.protocol_parts(protocol)
    if parts:  # emoji-XTD's "all": each style is its own pool; the result is their mean
        results = {}
        for part in parts:
            _say(f"{eval_set.name}/{part}", quiet)
            results[part] = evaluate_retrieval(loaded, eval_set, part, langs, opts=opts, probe=probe,
                                               exclude_overlap=exclude_overlap, train_source=train_source,
                                               quiet=quiet, pool=pool)
        return average_results(protocol, results)
    selected = eval_set.select_languages(langs, protocol)  # {tag: the set's code}
    order = {code: i for i, code in enumerate(eval_set.languages(protocol))}
    selected = dict(sorted(selected.items(), key=lambda item: order[item[1]]))  # the set's order, as reports show it
    pool = check_pool(pool, "pool") or eval_set.pool(protocol)
    # Read (and check) every caption file before the expensive image pass.
    captions = {tag: eval_set.captions(code, protocol) for tag, code in selected.items()}
    notes = list(loaded.notes)
    english = next((code for code in eval_set.languages(protocol) if is_language_code(code)
                    and canonical(code) == PROBE_LANG), None)
    if probe and not eval_set.parallel:
        probe = False
        notes.append("text probe skipped: the set's captions are not parallel across languages")
    elif probe and english is None:
        probe = False
        notes.append(f"text probe skipped: the set has no {PROBE_LANG!r} captions to pair with")
    if probe and PROBE_LANG not in captions:
        captions[PROBE_LANG] = eval_set.captions(english, protocol)
    images = eval_set.images(protocol)

    overlap, why = _leakage(images, train_source, opts.progress and not quiet)
    if overlap is None:
        if exclude_overlap:
            raise ValueError(f"--exclude-overlap: {why}")
        notes.append(f"leakage not checked: {why}")
    elif overlap:
        _say(f"warning: {len(overlap)} of {len(images)} {eval_set.name}/{protocol} images occur in the training "
             f"data ({train_source['train_data']})" + ("; excluded" if exclude_overlap
                                                      else "; --exclude-overlap drops them"), quiet)
    keep = list(range(len(images)))
    if exclude_overlap and overlap:
        dropped = set(overlap)
        keep = [i for i in keep if i not in dropped]
        if not keep:
            raise ValueError(f"--exclude-overlap: every {eval_set.name}/{protocol} image occurs in the training data")
    kept_images = [images[i] for i in keep]
    check_image_files(kept_images, f"{eval_set.name}/{protocol}")
    pool_images = shared_pool(captions, selected, keep) if pool == "shared" else keep
    if not pool_images:
        raise ValueError(f"{eval_set.name}/{protocol}: no image has a caption in every one of "
                         f"{', '.join(selected)}; --pool own scores each language on the images it has")

    model = loaded.model.eval().to(opts.torch_device())
    cache = EmbeddingCache(enabled=opts.cache)
    precision = opts.resolved_precision()
    transform = image_transform(model)
    start = time.perf_counter()
    image_parts = {"kind": "images", "model": loaded.identity, "set": eval_set.name, "protocol": protocol,
                   "excluded": sorted(images[i].name for i in overlap) if exclude_overlap and overlap else [],
                   "files": sha_lines([im.path for im in kept_images]), "transform": repr(transform),
                   "precision": precision}
    image_embeds, image_cache = cache.get_or_compute(
        image_parts, lambda: {"embeds": encode_images(model, [im.path for im in kept_images], opts, transform)})
    image_embeds = image_embeds["embeds"]
    image_seconds = time.perf_counter() - start

    text_seconds, text_cache, texts, results, counts, scored, pooled = 0.0, {}, {}, {}, {}, {}, {}
    position = {old: new for new, old in enumerate(keep)}
    for lang, caps in captions.items():
        caps, used = _restrict(caps, pool_images)
        if not caps.texts:
            raise ValueError(f"{eval_set.name}/{protocol}: no {lang} captions left in the pool "
                             "(after excluding overlap and images without captions)")
        pooled[lang] = (caps, used)
        start = time.perf_counter()
        parts = {"kind": "texts", "model": loaded.identity, "texts": sha_lines(caps.texts), "precision": precision}
        texts[lang], text_cache[lang] = cache.get_or_compute(
            parts, lambda: encode_texts(model, caps.texts, opts, pooled=True, desc=f"captions {lang}"))
        text_seconds += time.perf_counter() - start
        if lang in selected:
            rows = torch.tensor([position[i] for i in used])
            results[lang] = retrieval_recall(image_embeds[rows], texts[lang]["embeds"], caps.image_index,
                                             chunk_size=opts.chunk_size)
            counts[lang] = {"images": len(used), "captions": len(caps.texts)}
            if captions[lang].missing:
                counts[lang]["missing"] = captions[lang].missing
            names = [images[i].name for i in used]
            scored[lang] = gallery.Scored(caps.texts, [names[i] for i in caps.image_index], names,
                                          image_embeds[rows], texts[lang]["embeds"])

    text_probe = None
    if probe:
        text_probe = {}
        for lang in selected:
            if lang == PROBE_LANG:
                continue
            en_rows, x_rows = _paired_rows(pooled[PROBE_LANG], pooled[lang])
            r = retrieval_recall(texts[PROBE_LANG]["pooled"][en_rows], texts[lang]["pooled"][x_rows],
                                 torch.arange(len(en_rows)), ks=(1,), chunk_size=opts.chunk_size)
            text_probe[lang] = {"en->x@1": r["TR@1"], "x->en@1": r["IR@1"]}

    set_info = eval_set.describe()
    set_info["language_order"] = [canonical(code) for code in eval_set.languages(protocol) if is_language_code(code)]
    return {
        "mlilt_version": __version__, "task": "retrieval",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": loaded.run, "model_key": cache_key(loaded.identity), "eval_set": eval_set.name,
        "eval_set_info": set_info, "protocol": protocol,
        "num_images": len(kept_images),
        "pool": {"kind": pool, "images": len(pool_images) if pool == "shared" else
                 len({i for lang in selected for i in pooled[lang][1]})},
        "languages": {lang: {"code": code, **_language_facts(lang), "images": counts[lang]["images"]}
                      for lang, code in selected.items()},
        "leakage": {"overlap": None if overlap is None else len(overlap), "excluded": bool(exclude_overlap and overlap),
                    "excluded_count": len(overlap) if exclude_overlap and overlap else 0,
                    "train_data": (train_source or {}).get("train_data")},
        "results": results, "counts": counts,
        "gallery": gallery.record([kept_images[i].name for i in gallery.pick_targets(len(kept_images))], scored,
                                  {im.name: im.path for im in kept_images}),
        **({"text_probe": text_probe, "text_probe_info": "text tower pooled output before the projection, "
            "L2-normalised; each English caption against the same captions in language x, Recall@1"}
           if text_probe is not None else {}),
        "timings": {"image_encoding_s": round(image_seconds, 3), "text_encoding_s": round(text_seconds, 3)},
        "cache": {"images": image_cache, "texts": text_cache},
        "settings": {**describe_device(opts.torch_device()), "precision": precision, "batch_size": opts.batch_size,
                     "text_batch_size": opts.text_batch_size, "tie_rule": "pessimistic"},
        "notes": notes,
    }


def shared_pool(captions: dict[str, Captions], selected: dict[str, str], keep: list[int]) -> list[int]:
    """The kept image positions that every selected language has a caption for, in order."""
    have = set(keep)
    for lang in selected:
        have &= set(captions[lang].image_index)
    return [i for i in keep if i in have]


def _paired_rows(english: tuple[Captions, list[int]], other: tuple[Captions, list[int]]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the English and the other language's captions describing the same images, image by image."""
    by_image = []
    for caps, used in (english, other):
        by_image.append({used[image]: row for row, image in enumerate(caps.image_index)})
    both = [i for i in by_image[0] if i in by_image[1]]
    return torch.tensor([by_image[0][i] for i in both]), torch.tensor([by_image[1][i] for i in both])


def _language_facts(tag: str) -> dict:
    """Name, CC-100 size and resource tier of a language, as the result's ``languages`` records them."""
    facts = language_info(tag)
    return {"name": facts["name"], "cc100_gib": facts["cc100_gib"], "tier": facts["tier"]}


def default_result_path(loaded: LoadedModel, name: str) -> Path:
    """RUN_DIR/eval/<name>.json for a run; ./eval/<ORG--NAME or preset>_<name>.json for a hub id or a preset."""
    if loaded.run_dir is not None:
        return loaded.run_dir / RESULT_DIR / f"{name}.json"
    label = loaded.run["name"].replace("/", "--") if loaded.run.get("path") else loaded.run["strategy"]
    return Path(RESULT_DIR) / f"{label}_{name}.json"
