"""Evaluation sets: what images and captions a protocol scores, read from ``eval_sets/*.yaml`` or a manifest.

    >>> from mlilt.evaluation.sets import load_eval_set
    >>> xtd = load_eval_set("xtd10", image_root="~/coco2014")          # captions in data_dir()/xtd10
    >>> xtd.languages()                                                 # ['en', 'es', ..., 'zh'] (+ any added file)
    >>> images = xtd.images("lilt200")                                  # 200 EvalImage(name, path)
    >>> caps = xtd.captions("ru", "lilt200")                            # Captions(texts, image_index)
    >>> load_eval_set("my_pairs.jsonl").languages()                     # a JSONL manifest, any corpus

One reader per kind of set, chosen by the YAML's ``kind``:

* ``line_aligned`` (XTD10, XTD200, Flickr30k-200, emoji-XTD; ``line_aligned.py``): an image list and
  one caption file per language, line i of each describing image i.
* ``multi30k`` (``multi30k.py``): line-aligned, each test set (protocol) with its own files.
* ``multi_caption_jsonl`` (XM3600; ``multi_caption.py``): one JSONL object per image with several
  captions per language.
* a JSONL manifest path (``manifest.py``): one ``{"image", "caption", "lang"}`` object a line.

Set files are looked up in ``$MLILT_EVAL_SETS`` (a ``:``-separated list of folders), then in the
repository's ``eval_sets/`` folder (editable install) or ``<prefix>/share/mlilt/eval_sets`` (a wheel's copy).
Installing published files (``mlilt data NAME``) is ``install.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlilt.evaluation.sets import line_aligned, multi30k, multi_caption
from mlilt.evaluation.sets.base import (BUNDLED_SETS_DIRS, LANGUAGE_CODE, MISSING_CAPTION, POOLS, SETS_ENV, Captions,
                                        EvalImage, EvalSet, EvalSetError, available_eval_sets, check_language_code,
                                        default_data_dir, eval_set_dirs, find_spec_file, install_hint, read_lines,
                                        read_text)
from mlilt.evaluation.sets.install import fetch_url, install_set, unverified
from mlilt.evaluation.sets.line_aligned import LineAlignedSet
from mlilt.evaluation.sets.manifest import SUFFIXES as MANIFEST_SUFFIXES
from mlilt.evaluation.sets.manifest import ManifestSet
from mlilt.evaluation.sets.multi30k import Multi30kSet
from mlilt.evaluation.sets.multi_caption import MultiCaptionSet

#: kind -> (spec normaliser, reader)
KINDS = {"line_aligned": (line_aligned.normalise_spec, LineAlignedSet),
         "multi30k": (multi30k.normalise_spec, Multi30kSet),
         "multi_caption_jsonl": (multi_caption.normalise_spec, MultiCaptionSet)}

__all__ = ["BUNDLED_SETS_DIRS", "KINDS", "LANGUAGE_CODE", "MANIFEST_SUFFIXES", "MISSING_CAPTION", "POOLS", "SETS_ENV",
           "Captions", "EvalImage", "EvalSet", "EvalSetError", "LineAlignedSet", "ManifestSet", "Multi30kSet",
           "MultiCaptionSet", "available_eval_sets", "check_language_code", "default_data_dir", "eval_set_dirs",
           "fetch_url", "find_spec_file", "install_hint", "install_set", "load_eval_set", "read_lines", "read_spec",
           "read_text", "unverified"]


def read_spec(path: str | os.PathLike) -> dict:
    """A set's YAML as a normalised dict (``name kind files protocols ...``), checked by its kind's reader."""
    from mlilt.evaluation.sets.base import read_yaml

    spec = read_yaml(path)
    spec.setdefault("kind", "line_aligned")
    if spec["kind"] not in KINDS:
        raise EvalSetError(f"{path}: kind {spec['kind']!r} is not supported ({', '.join(KINDS)})")
    return KINDS[spec["kind"]][0](spec)


def load_eval_set(name_or_path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                  image_root: str | os.PathLike | None = None,
                  captions: dict[str, str] | None = None) -> EvalSet:
    """A set by name (``xtd10``, ``emoji-xtd``), by YAML path, or a JSONL manifest path."""
    if Path(name_or_path).suffix in MANIFEST_SUFFIXES:
        if captions:
            raise EvalSetError("--captions adds a line-aligned caption file; a manifest set takes its "
                               "languages from the manifest's 'lang' field")
        return ManifestSet(name_or_path, image_root=image_root)
    spec = read_spec(find_spec_file(name_or_path))
    reader = KINDS[spec["kind"]][1]
    if not issubclass(reader, LineAlignedSet):
        if captions:
            raise EvalSetError(f"--captions adds a line-aligned caption file; {spec['name']} is a "
                               f"{spec['kind']} set")
        return reader(spec, data_dir=data_dir, image_root=image_root)
    return reader(spec, data_dir=data_dir, image_root=image_root, captions=captions)
