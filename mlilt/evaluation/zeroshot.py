"""Zero-shot classification in several languages on an image folder (one sub-folder per class).

    >>> from mlilt.evaluation.zeroshot import evaluate_zeroshot
    >>> result = evaluate_zeroshot(loaded, "data/pets", langs=["en", "de"],
    ...                            templates={"en": ["a photo of {}."], "de": ["ein Foto von {}."]})
    >>> result["results"]["de"]["top1"]

The dataset folder holds the class folders (sorted by name: class i is the i-th folder) and, per
language, the class names: ``classnames_<lang>.txt`` (one a line, in sorted folder order) or
``classnames_<lang>.json`` (``{"folder": "name"}``); ``--classnames de=PATH`` points elsewhere.
Prompt templates (``{}`` is replaced by the class name), first found wins:

1. ``--template de="ein Foto von {}"`` (repeat a language to ensemble), or ``--template "{}"`` for all;
2. a templates file (``--templates FILE``: JSON ``{"de": ["ein Foto von {}.", ...]}``) or
   ``templates_<lang>.txt`` in the dataset folder (one template a line);
3. English ``a photo of {}.``; any other language just the class name ``{}``.

Several templates are ensembled CLIP-style: the mean of their normalised embeddings, renormalised.
Top-1 / top-5 accuracy in percent (top-5 is top-min(5, classes)); ties count against the image.
Images are encoded once for all languages and cached like the retrieval harness does.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mlilt.evaluation.harness import (EmbeddingCache, EncodeOptions, LoadedModel, describe_device, encode_images,
                                      encode_texts, image_transform, sha_lines)
from mlilt.evaluation.retrieval import topk_accuracy
from mlilt.evaluation.sets import LANGUAGE_CODE, EvalSetError, check_language_code, read_lines

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_TEMPLATES = {"en": ["a photo of {}."]}
FALLBACK_TEMPLATE = "{}"


def read_imagefolder(root: str | os.PathLike) -> tuple[list[str], list[tuple[str, int]]]:
    """Class folder names (sorted) and ``(image path, class index)`` for every image file below them."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise EvalSetError(f"{root}: zero-shot classification needs at least two class sub-folders, "
                           f"found {len(classes)}")
    items = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EvalSetError(f"{root / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        items += [(str(p), label) for p in files]
    return classes, items


def classname_languages(root: str | os.PathLike) -> list[str]:
    """Languages with a ``classnames_<lang>.txt|json`` file in the dataset folder."""
    codes = []
    for path in sorted(Path(root).expanduser().glob("classnames_*")):
        code = path.stem[len("classnames_"):]
        if path.suffix in (".txt", ".json") and LANGUAGE_CODE.match(code):
            codes.append(code)
    return list(dict.fromkeys(codes))


def read_classnames(root: str | os.PathLike, lang: str, classes: list[str],
                    path: str | os.PathLike | None = None) -> list[str]:
    """Names of ``classes`` (folder names, sorted) in ``lang``."""
    root = Path(root).expanduser()
    if path is None:
        candidates = [root / f"classnames_{lang}.txt", root / f"classnames_{lang}.json"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{root}: no class names for {lang!r}: add classnames_{lang}.txt (one a line, "
                                    f"in sorted folder order) or classnames_{lang}.json, "
                                    f"or pass --classnames {lang}=PATH")
    path = Path(path).expanduser()
    if path.suffix == ".json":
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise EvalSetError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(mapping, dict):
            raise EvalSetError(f"{path}: expected a mapping class folder -> name")
        missing = [c for c in classes if not str(mapping.get(c, "")).strip()]
        if missing:
            raise EvalSetError(f"{path}: no name for class folder(s) {', '.join(missing[:5])}")
        return [str(mapping[c]).strip() for c in classes]
    names = read_lines(path, "class names")
    if len(names) != len(classes):
        line = min(len(names), len(classes)) + (len(names) > len(classes))
        raise EvalSetError(f"{path}:{line}: {len(names)} class names for {len(classes)} class folders "
                           f"(line i names the i-th folder in sorted order: {', '.join(classes[:3])}, …)")
    return names


def parse_templates(values: list[str] | None) -> dict[str, list[str]]:
    """``--template`` values: ``lang=TEMPLATE`` for one language, a bare ``TEMPLATE`` for all ("*")."""
    out: dict[str, list[str]] = {}
    for value in values or []:
        lang, sep, template = value.partition("=")
        if not sep or not LANGUAGE_CODE.match(lang):
            lang, template = "*", value
        out.setdefault(lang, []).append(template)
    return out


def read_templates_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """A JSON templates file: ``{"en": ["a photo of {}.", ...], "de": [...]}``."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvalSetError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise EvalSetError(f'{path}: expected {{"lang": ["template with {{}}", ...]}}')
    return {check_language_code(k, str(path)): [str(t) for t in v] for k, v in data.items()}


def templates_for(lang: str, root: Path, given: dict[str, list[str]]) -> list[str]:
    """The templates of one language (see the module docstring for the order)."""
    if lang in given:
        templates = given[lang]
    elif "*" in given:
        templates = given["*"]
    elif (root / f"templates_{lang}.txt").is_file():
        templates = read_lines(root / f"templates_{lang}.txt", "templates")
    else:
        templates = DEFAULT_TEMPLATES.get(lang, [FALLBACK_TEMPLATE])
    for t in templates:
        if "{}" not in t:
            raise EvalSetError(f"template {t!r} for {lang!r} has no {{}} where the class name goes")
    return templates


def class_embeddings(model, names: list[str], templates: list[str], opts: EncodeOptions) -> torch.Tensor:
    """(C, D) class embeddings: each template filled with each name, ensembled per class."""
    texts = [t.replace("{}", name) for t in templates for name in names]
    embeds = encode_texts(model, texts, opts, desc="class prompts")["embeds"]
    embeds = F.normalize(embeds.view(len(templates), len(names), -1), dim=-1).mean(0)
    return F.normalize(embeds, dim=-1)


def evaluate_zeroshot(loaded: LoadedModel, dataset: str | os.PathLike, langs: list[str] | None = None, *,
                      templates: dict[str, list[str]] | None = None, classnames: dict[str, str] | None = None,
                      opts: EncodeOptions | None = None) -> dict:
    """Top-1 / top-5 accuracy per language of zero-shot classification on an image folder."""
    from mlilt import __version__

    opts = opts or EncodeOptions()
    root = Path(dataset).expanduser()
    classes, items = read_imagefolder(root)
    classnames = {check_language_code(k, "--classnames"): v for k, v in (classnames or {}).items()}
    available = list(dict.fromkeys(classname_languages(root) + list(classnames)))
    if not langs:
        langs = available or ["en"]  # no class-name file at all: the folder names, read as English
    names, prompts = {}, {}
    for lang in langs:
        check_language_code(lang, "--langs")
        if lang in classnames or lang in available:
            names[lang] = read_classnames(root, lang, classes, classnames.get(lang))
        elif lang == "en" and not available:
            names[lang] = [c.replace("_", " ") for c in classes]
        else:
            read_classnames(root, lang, classes)  # raises the "add classnames_<lang>.txt" error
        prompts[lang] = templates_for(lang, root, templates or {})

    model = loaded.model.eval().to(opts.torch_device())
    transform = image_transform(model)
    paths = [p for p, _ in items]
    labels = torch.tensor([label for _, label in items])
    start = time.perf_counter()
    parts = {"kind": "images", "model": loaded.identity, "set": f"imagefolder:{root.resolve()}", "protocol": "all",
             "files": sha_lines(paths), "transform": repr(transform), "precision": opts.resolved_precision()}
    cached, image_cache = EmbeddingCache(enabled=opts.cache).get_or_compute(
        parts, lambda: {"embeds": encode_images(model, paths, opts, transform)})
    image_seconds = time.perf_counter() - start

    results, text_seconds = {}, 0.0
    for lang in langs:
        start = time.perf_counter()
        classes_embeds = class_embeddings(model, names[lang], prompts[lang], opts)
        text_seconds += time.perf_counter() - start
        top = topk_accuracy(cached["embeds"] @ classes_embeds.T, labels, ks=(1, 5), chunk_size=opts.chunk_size)
        results[lang] = {"top1": top[1], "top5": top[5]}

    return {
        "mlilt_version": __version__, "task": "zeroshot",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": loaded.run, "eval_set": root.name, "protocol": "all",
        "dataset": {"path": str(root.resolve()), "classes": classes},
        "num_images": len(items), "num_classes": len(classes),
        "results": results, "templates": prompts, "classnames": names,
        "timings": {"image_encoding_s": round(image_seconds, 3), "text_encoding_s": round(text_seconds, 3)},
        "cache": {"images": image_cache},
        "settings": {**describe_device(opts.torch_device()), "precision": opts.resolved_precision(),
                     "top5_k": min(5, len(classes)), "tie_rule": "pessimistic"},
        "notes": list(loaded.notes),
    }


def format_table(result: dict) -> str:
    """A compact text table of a zero-shot result."""
    run = result["run"]
    lines = [f"zero-shot {result['eval_set']}: {result['num_images']} images, {result['num_classes']} classes   "
             f"model: {run.get('name')} ({run.get('strategy')})",
             f"{'lang':<6}{'top1':>8}{'top5':>8}   templates"]
    for lang, r in result["results"].items():
        lines.append(f"{lang:<6}{r['top1']:>8.1f}{r['top5']:>8.1f}   {' | '.join(result['templates'][lang])}")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
