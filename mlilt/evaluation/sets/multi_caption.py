"""Several captions per image per language in one JSONL file: Crossmodal-3600's ``captions.jsonl``.

One object a line per image: ``{"image/key": "d89a4889331ce042", "sw": {"caption": ["...", "..."],
"caption/tokenized": [...], ...}, "en": {...}, ...}``; a language is any field whose value holds a
``caption`` list. Images are ``image_paths`` templates over ``{key}`` (``{image_root}/{key}.jpg``).
Scored as COCO's five captions are: text->image takes every caption as a query; image->text counts
a hit when any of the image's captions is in the top k (``retrieval_recall`` with ``image_index``).
A protocol's ``captions: first`` keeps the first caption of each image only (CLIP_benchmark's
XM3600). An image without captions in a language is left out of that language's pool.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlilt.evaluation.sets.base import (Captions, EvalImage, EvalSet, EvalSetError, check_pool, default_data_dir,
                                        install_hint, json_lines)

CAPTION_CHOICES = ("all", "first")


def normalise_spec(spec: dict) -> dict:
    """A multi-caption JSONL set's YAML checked and filled in."""
    path = spec["spec_file"]
    files = spec.get("files") or {}
    if not isinstance(files.get("captions"), str):
        raise EvalSetError(f"{path}: files.captions is missing (the JSONL file, e.g. captions.jsonl)")
    spec.setdefault("key_field", "image/key")
    if not isinstance(spec.get("image_path"), str) or "{key}" not in spec["image_path"]:
        raise EvalSetError(f"{path}: image_path is missing (a template with {{key}}, e.g. '{{image_root}}/{{key}}.jpg')")
    protocols = spec.get("protocols") or {"all": {}}
    spec["protocols"] = {str(k): dict(v or {}) for k, v in protocols.items()}
    for name, rule in spec["protocols"].items():
        rule.setdefault("captions", "all")
        if rule["captions"] not in CAPTION_CHOICES:
            raise EvalSetError(f"{path}: protocols.{name}.captions must be one of {', '.join(CAPTION_CHOICES)}, "
                               f"got {rule['captions']!r}")
        check_pool(rule.get("pool"), f"{path}: protocols.{name}")
    check_pool(spec.get("pool"), path)
    spec.setdefault("default_protocol", next(iter(spec["protocols"])))
    spec["languages"] = [str(x) for x in spec.get("languages") or []]
    return spec


class MultiCaptionSet(EvalSet):
    """Images with any number of captions per language, from one JSONL file (XM3600)."""

    kind = "multi_caption_jsonl"
    parallel = False  # each language's captions were written independently, not translated

    def __init__(self, spec: dict, data_dir: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None):
        self.spec = spec
        self.name = spec["name"]
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir(spec)
        self.image_root = Path(image_root).expanduser() if image_root else None
        self.path = self.data_dir / spec["files"]["captions"]
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.name}: {self.path} not found; install the set with: "
                                    f"{install_hint(spec)}, or pass --data-dir DIR")
        self._keys: list[str] = []
        self._captions: dict[str, list[list[str]]] = {}  # lang -> per image, its captions
        self._read()

    def _read(self) -> None:
        key_field = self.spec["key_field"]
        rows, seen = [], set()
        for where, obj in json_lines(self.path):
            key = obj.get(key_field) if isinstance(obj, dict) else None
            if not isinstance(key, str) or not key.strip():
                raise EvalSetError(f"{where}: field {key_field!r} is missing or empty (one object per image)")
            if key in seen:
                raise EvalSetError(f"{where}: image {key!r} appears twice")
            seen.add(key)
            per_lang = {}
            for lang, value in obj.items():
                if not isinstance(value, dict) or "caption" not in value:
                    continue
                texts = value["caption"]
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise EvalSetError(f"{where}: {lang}.caption must be a list of strings")
                texts = [t.strip() for t in texts if t.strip()]
                if texts:
                    per_lang[lang] = texts
            rows.append((key, per_lang))
        if not rows:
            raise EvalSetError(f"{self.path}: no images")
        self._keys = [key for key, _ in rows]
        found = list(dict.fromkeys(lang for _, per_lang in rows for lang in per_lang))
        order = [lang for lang in self.spec["languages"] if lang in found]
        order += [lang for lang in found if lang not in order]
        self._captions = {lang: [per_lang.get(lang, []) for _, per_lang in rows] for lang in order}

    def languages(self, protocol: str | None = None) -> list[str]:
        return list(self._captions)

    def _where(self) -> str:
        return f" in {self.path}"

    def image_path(self, key: str) -> str:
        template = self.spec["image_path"]
        if "{image_root}" in template and self.image_root is None:
            raise EvalSetError(f"{self.name}: its images live under --image-root ({template}); pass --image-root DIR")
        return template.format(image_root=self.image_root, data_dir=self.data_dir, key=key)

    def images(self, protocol: str | None = None) -> list[EvalImage]:
        self.check_protocol(protocol)
        paths = [self.image_path(key) for key in self._keys]
        return [EvalImage(Path(path).name, path) for path in paths]

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        protocol = self.check_protocol(protocol)
        if lang not in self._captions:
            raise EvalSetError(f"{self.name}: no captions for language {lang!r} in {self.path}")
        first = self.spec["protocols"][protocol]["captions"] == "first"
        texts, index, missing = [], [], 0
        for position, captions in enumerate(self._captions[lang]):
            missing += not captions
            for text in captions[:1] if first else captions:
                texts.append(text)
                index.append(position)
        return Captions(lang, texts, index, str(self.path), missing=missing)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "data_dir": str(self.data_dir), **self._describe_spec()}
