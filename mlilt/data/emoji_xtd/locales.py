"""Test captions of emoji-XTD v2 in every CLDR locale that names enough of the test concepts.

A locale counts only its own ``tts`` names (``annotations`` + ``annotationsDerived``), not those it
would inherit from a parent: ``es_419`` or ``pt_PT`` override a few hundred of their parent's names and
would otherwise be near copies of ``es`` and ``pt``. A concept the locale does not name gets the line
:data:`MISSING_CAPTION`, so every caption file stays line-aligned with ``test_image_names.txt``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlilt.evaluation.sets.base import MISSING_CAPTION  # the line-aligned reader leaves such an image out

from .cldr import cldr_locales, find_cldr, load_cldr_names
from .concepts import emoji_from_id
from .sources import cldr_source

COVERAGE_THRESHOLD = 0.60  # low on purpose: Yoruba, Igbo, Xhosa, Maori, Wolof name ~69 % of the test concepts
TEST_IMAGES = "test_image_names.txt"
TEST_CAPTIONS = "test_1kcaptions_{lang}.txt"


def listed_concepts(root: Path) -> list[tuple[str, str]]:
    """``(image name, emoji)`` of each line of the build's test image list."""
    names = (root / TEST_IMAGES).read_text(encoding="utf-8").splitlines()
    return [(name, emoji_from_id(name.removesuffix(".png").split("/")[-1])) for name in names]


def caption_lines(listed: list[tuple[str, str]], names: dict[str, str]) -> str:
    """One line per listed image: the locale's name (whitespace collapsed) or :data:`MISSING_CAPTION`."""
    return "".join((" ".join(names[emoji].split()) if emoji in names else MISSING_CAPTION) + "\n"
                   for _, emoji in listed)


def add_cldr_locales(root: Path, languages: tuple[str, ...], builder_version: str, *,
                     cldr_dir: str | os.PathLike | None = None, threshold: float = COVERAGE_THRESHOLD,
                     progress: bool = True) -> dict:
    """Write test captions of every CLDR locale naming >= ``threshold`` of the test concepts; update meta.json.

    ``languages`` (the build's eight) already have their files, which are left as they are. Files are
    replaced one by one and meta.json last, so an interrupted run leaves the old builder version and
    the next call redoes it. Returns the ``cldr_locales`` record written into meta.json.
    """
    from tqdm.auto import tqdm

    cldr = find_cldr(cldr_dir)
    listed = listed_concepts(root)
    concepts = list(dict.fromkeys(emoji for _, emoji in listed))
    locales = cldr_locales(cldr)
    coverage: dict[str, dict] = {}
    named_by: dict[str, set[str]] = {}
    for locale in tqdm(locales, desc="emoji-xtd: CLDR locales", unit="locale", disable=not progress):
        names = load_cldr_names(locale, cldr)
        named = {emoji for emoji in concepts if emoji in names}
        coverage[locale] = {"named": len(named), "share": round(len(named) / len(concepts), 4)}
        if locale in languages or len(named) < threshold * len(concepts):
            continue
        named_by[locale] = named
        _replace(root / TEST_CAPTIONS.format(lang=locale), caption_lines(listed, names))
    included = [*languages, *named_by]
    shared = [emoji for emoji in concepts if all(emoji in named for named in named_by.values())]
    record = {
        "rule": f"every locale of CLDR's common/annotations{{,Derived}} (root left out) whose own tts names "
                f"(no inheritance from a parent locale) name >= {threshold:.0%} of the test concepts; "
                f"'{MISSING_CAPTION}' for a concept it does not name",
        "threshold": threshold,
        "test_concepts": len(concepts),
        "shared_pool_concepts": len(shared),
        "included": {locale: coverage[locale] for locale in included},
        "left_out": {locale: coverage[locale] for locale in locales if locale not in included},
    }
    meta_path = root / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["builder_version"] = builder_version
    meta["languages"] = included
    meta["default_languages"] = list(languages)
    meta["captions"]["test"] = f"CLDR name in each language; '{MISSING_CAPTION}' where a locale has none"
    meta["cldr_locales"] = record
    meta["sources"]["cldr"] = cldr_source(cldr, locales)
    _replace(meta_path, json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    return record


def _replace(path: Path, text: str) -> None:
    """Write ``text`` next to ``path``, then rename it over ``path``: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
