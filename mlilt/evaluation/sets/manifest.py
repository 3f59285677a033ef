"""A JSONL manifest of ``{"image", "caption", "lang"}`` lines (``image_id`` optional): any corpus, any languages.

Images are relative to the manifest's folder (or ``image_root``); one protocol, ``all``; any number of
captions per image and language. An image without a caption in a language is left out of that
language's pool.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlilt.evaluation.sets.base import (Captions, EvalImage, EvalSet, EvalSetError, check_language_code,
                                         json_lines)

SUFFIXES = (".jsonl",)


class ManifestSet(EvalSet):
    """A JSONL manifest of ``{"image", "caption", "lang"}`` lines: any corpus, any languages."""

    kind = "manifest"
    parallel = False

    def __init__(self, path: str | os.PathLike, image_root: str | os.PathLike | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such manifest")
        self.name = self.path.stem
        root = Path(image_root).expanduser() if image_root else self.path.parent
        self._images: dict[str, EvalImage] = {}
        self._rows: list[tuple[str, str, str]] = []  # (lang, caption, image key)
        for where, obj in json_lines(self.path):
            if not isinstance(obj, dict):
                raise EvalSetError(f"{where}: expected an object with image, caption, lang")
            for field in ("image", "caption", "lang"):
                if not isinstance(obj.get(field), str) or not obj[field].strip():
                    raise EvalSetError(f"{where}: field {field!r} is missing or empty")
            lang = check_language_code(obj["lang"].strip(), where)
            image = obj["image"].strip()
            key = str(obj.get("image_id") or image)
            if key not in self._images:
                path = image if os.path.isabs(image) else str(root / image)
                self._images[key] = EvalImage(image, path)
            self._rows.append((lang, obj["caption"].strip(), key))
        if not self._rows:
            raise EvalSetError(f"{self.path}: no captions")
        self._order = {key: i for i, key in enumerate(self._images)}

    @property
    def protocols(self) -> list[str]:
        return ["all"]

    def languages(self, protocol: str | None = None) -> list[str]:
        return list(dict.fromkeys(lang for lang, _, _ in self._rows))

    def _where(self) -> str:
        return f" in {self.path}"

    def images(self, protocol: str | None = None) -> list[EvalImage]:
        self.check_protocol(protocol)
        return list(self._images.values())

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        self.check_protocol(protocol)
        rows = [(caption, self._order[key]) for code, caption, key in self._rows if code == lang]
        return Captions(lang, [c for c, _ in rows], [i for _, i in rows], str(self.path))

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "manifest": str(self.path)}


