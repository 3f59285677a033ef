"""Reading the CLDR emoji names (``tts`` annotations) and keywords of Debian's ``unicode-cldr-core``."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

CLDR_PACKAGE = "unicode-cldr-core"
CLDR_DIRS = (Path("/usr/share/unicode/cldr/common"),)
CLDR_ENV = "MLILT_CLDR_DIR"
ANNOTATION_DIRS = ("annotations", "annotationsDerived")


def find_cldr(cldr_dir: str | os.PathLike | None = None) -> Path:
    """CLDR ``common`` directory (argument, ``$MLILT_CLDR_DIR`` or the Debian install path)."""
    candidates = [Path(p) for p in (cldr_dir, os.environ.get(CLDR_ENV)) if p] or list(CLDR_DIRS)
    for p in candidates:
        if (p / "annotations" / "en.xml").is_file():
            return p
    raise FileNotFoundError(
        f"CLDR annotations not found under {', '.join(map(str, candidates))}; "
        f"install them with `apt-get install {CLDR_PACKAGE}` (or set ${CLDR_ENV})"
    )


def annotation_files(lang: str, cldr_dir: str | os.PathLike | None = None) -> list[Path]:
    """A locale's ``annotations`` and ``annotationsDerived`` files (a few locales have only one)."""
    root = find_cldr(cldr_dir)
    files = [root / sub / f"{lang}.xml" for sub in ANNOTATION_DIRS]
    present = [f for f in files if f.is_file()]
    if not present:
        raise FileNotFoundError(f"no CLDR annotations for {lang!r}: {', '.join(map(str, files))} not found; "
                                f"reinstall `{CLDR_PACKAGE}`")
    return present


def cldr_locales(cldr_dir: str | os.PathLike | None = None) -> list[str]:
    """Every locale with emoji annotations, by CLDR's file code (``sw``, ``sr_Latn``), ``root`` left out.

    ``root`` is CLDR's language-neutral base of inheritance, not a language.
    """
    root = find_cldr(cldr_dir)
    return sorted({p.stem for sub in ANNOTATION_DIRS for p in (root / sub).glob("*.xml")} - {"root"})


def _iter_annotations(lang: str, cldr_dir, tts: bool) -> Iterator[tuple[str, str]]:
    for path in annotation_files(lang, cldr_dir):
        for node in ET.parse(path).getroot().iter("annotation"):
            if (node.get("type") == "tts") == tts and node.get("cp") and node.text:
                text = node.text.strip()
                if text and text != "↑↑↑":  # "↑↑↑" = inherit from the parent locale
                    yield node.get("cp"), text


def load_cldr_names(lang: str, cldr_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """CLDR short names (``tts``) of one language, keyed by the emoji string as CLDR writes it."""
    names: dict[str, str] = {}
    for cp, text in _iter_annotations(lang, cldr_dir, tts=True):
        names.setdefault(cp, text)
    return names


def load_cldr_keywords(lang: str, cldr_dir: str | os.PathLike | None = None,
                       ) -> dict[str, list[str]]:
    """CLDR keywords (the ``|``-separated annotations) of one language, keyed by emoji string."""
    keywords: dict[str, list[str]] = {}
    for cp, text in _iter_annotations(lang, cldr_dir, tts=False):
        keywords.setdefault(cp, [k.strip() for k in text.split("|") if k.strip()])
    return keywords


def cldr_version(root: Path) -> str | None:
    try:
        dtd = (root / "dtd" / "ldml.dtd").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r'cldrVersion\s+CDATA\s+#FIXED\s+"([^"]+)"', dtd)
    return m.group(1) if m else None

