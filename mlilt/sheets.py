"""Thumbnail grids drawn with PIL: ``mlilt search``'s contact sheet and the report's retrieval gallery.

No torch here (the report imports this): everything drawn comes from file paths, names and scores.

    >>> contact_sheet([("ein rotes Auto", [("cars/1.jpg", 0.41), ("cars/7.jpg", 0.38)])]).save("sheet.png")
    >>> gallery_image(columns, rows, images).save("reports/emoji-xtd.gallery.png")
"""

from __future__ import annotations

import functools
import unicodedata
import warnings
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
CORRECT = (0, 160, 60)       # frame of the image a query belongs to
# Contact sheet: one block per query, a title band over a row of thumbnails with name and score.
SHEET_THUMB, SHEET_PAD, SHEET_TITLE_H, SHEET_LABEL_H = 160, 10, 34, 36
# Gallery: a title, a header of run names, then one row per (caption, language); k thumbnails per run.
GALLERY_THUMB, GALLERY_GAP, GALLERY_LABEL_W, GALLERY_HEADER_H, GALLERY_TITLE_H, GALLERY_RUN_SEP = 64, 4, 300, 28, 44, 12
GALLERY_MIN_W = 1000  # room for the title with a single run


# --------------------------------------------------------------------------------------------- fonts

@functools.lru_cache(maxsize=None)
def _font_files() -> tuple[str, ...]:
    """Installed TrueType fonts, matplotlib's bundled DejaVu Sans first (always there, wide Latin/Cyrillic)."""
    from matplotlib import font_manager

    first = font_manager.findfont("DejaVu Sans")
    # The system's font folders scanned now (matplotlib's font cache may predate e.g. fonts-noto-cjk).
    found = set(font_manager.findSystemFonts()) | {f.fname for f in font_manager.fontManager.ttflist}
    # Regular before bold; matplotlib's placeholder-glyph font only when nothing else has the glyphs.
    others = sorted(found - {first}, key=lambda f: ("lastresort" in f.lower(), "bold" in f.lower(), f))
    return (first, *[f for f in others if f.lower().endswith((".ttf", ".otf", ".ttc"))])


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()


def _draws_boxes(path: str) -> bool:
    # matplotlib's Last Resort font "has" every character, as a box showing its block: that is no font for text.
    return "lastresort" in Path(path).name.lower()


@functools.lru_cache(maxsize=512)
def font_for(text: str, size: int) -> ImageFont.FreeTypeFont:
    """The first installed font that has every glyph of ``text`` (Korean, Chinese need e.g. Noto CJK);
    else the one with the most, with a warning naming the scripts no font has (``_write`` draws them as ?)."""
    needed = {ord(c) for c in text if not c.isspace()}
    files = _text_fonts()
    path = next((f for f in files if needed <= _charmap(f)), None)
    if path is None:
        path = max(files, key=lambda f: len(needed & _charmap(f)))  # the first of equals: DejaVu Sans
        _warn_no_font(needed - frozenset().union(*map(_charmap, files)))
    return ImageFont.truetype(path, size)


def _text_fonts() -> list[str]:
    return [f for f in _font_files() if not _draws_boxes(f)]


_warned_scripts: set[str] = set()


def _script(codepoint: int) -> str:
    """The first word of the character's Unicode name (ADLAM, HANGUL, CJK …), or U+XXXX when it has none."""
    name = unicodedata.name(chr(codepoint), "")
    return name.split()[0] if name else f"U+{codepoint:04X}"


def _warn_no_font(missing: set[int]) -> None:
    scripts = sorted({_script(c) for c in missing} - _warned_scripts)
    if scripts:
        _warned_scripts.update(scripts)
        warnings.warn(f"no installed font draws {', '.join(scripts)} (e.g. U+{min(missing):04X}); those characters "
                      "are drawn as '?': install a font that covers them (Debian: fonts-noto, fonts-noto-cjk)",
                      stacklevel=3)


def _drawable(text: str, font: ImageFont.FreeTypeFont) -> str:
    """``text`` with the characters its font lacks as '?' (a box per character would say nothing)."""
    have = _charmap(font.path)
    return "".join(c if c.isspace() or ord(c) in have else "?" for c in text)


def _font_runs(text: str, size: int) -> list[tuple[str, ImageFont.FreeTypeFont]]:
    """``text`` as runs of one font each: one run where a font has every glyph, else (a language code before its
    caption in a script whose font has no Latin) each character in the font of the run before it if that has it,
    else the first font that has it; a character no font has is '?' in :func:`font_for`'s font."""
    whole = font_for(text, size)
    if {ord(c) for c in text if not c.isspace()} <= _charmap(whole.path):
        return [(text, whole)]
    fonts, runs = _text_fonts(), []  # runs: [text, font path]
    for c in text:
        if runs and (c.isspace() or ord(c) in _charmap(runs[-1][1])):
            runs[-1][0] += c
            continue
        path = next((f for f in fonts if ord(c) in _charmap(f)), None)
        c, path = (c, path) if path else ("?", whole.path)
        if runs and runs[-1][1] == path:
            runs[-1][0] += c
        else:
            runs.append([c, path])
    return [(part, whole if path == whole.path else ImageFont.truetype(path, size)) for part, path in runs]


def _fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _write(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, width: int, fill=INK) -> None:
    runs = _font_runs(text, size)
    if len(runs) == 1:
        font = runs[0][1]
        draw.text(xy, _fit(_drawable(text, font), font, width), font=font, fill=fill)
        return
    # Several fonts: on one baseline (the first font's), each run after the last, cut where the width ends.
    x, baseline = xy[0], xy[1] + runs[0][1].getmetrics()[0]
    for part, font in runs:
        room = xy[0] + width - x
        if room <= 0:
            break
        fitted = _fit(part, font, room)
        draw.text((x, baseline), fitted, font=font, fill=fill, anchor="ls")
        if fitted != part:
            break
        x += font.getlength(part)


# --------------------------------------------------------------------------------------------- thumbnails

def thumbnail(path: str | Path, size: int) -> Image.Image:
    """The image fitted into a white ``size``x``size`` square; a grey square saying so when unreadable."""
    tile = Image.new("RGB", (size, size), BACKGROUND)
    try:
        with Image.open(path) as im:
            im = ImageOps.contain(im.convert("RGBA"), (size, size))  # small images are scaled up too
            tile.paste(im, ((size - im.width) // 2, (size - im.height) // 2), im)
    except (OSError, ValueError):
        tile.paste((225, 225, 225), (0, 0, size, size))
        ImageDraw.Draw(tile).text((4, size // 2 - 6), "missing", fill=MUTED)
    return tile


def _frame(draw: ImageDraw.ImageDraw, x: int, y: int, size: int, colour, width: int = 3) -> None:
    # Inside the thumbnail's square, so that neighbouring frames never touch.
    draw.rectangle((x, y, x + size - 1, y + size - 1), outline=colour, width=width)


# --------------------------------------------------------------------------------------------- contact sheet

def contact_sheet_size(queries: int, k: int) -> tuple[int, int]:
    """Pixel size of a contact sheet of ``queries`` blocks of ``k`` thumbnails."""
    block = SHEET_TITLE_H + SHEET_THUMB + SHEET_LABEL_H + SHEET_PAD
    return SHEET_PAD + k * (SHEET_THUMB + SHEET_PAD), queries * block + SHEET_PAD


def contact_sheet(blocks: list[tuple[str, list[tuple[str, float]]]]) -> Image.Image:
    """One block per query: its text as the title, then its hits as thumbnails with file name and score."""
    k = max((len(hits) for _, hits in blocks), default=0)
    sheet = Image.new("RGB", contact_sheet_size(len(blocks), max(k, 1)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = SHEET_PAD
    for title, hits in blocks:
        _write(draw, (SHEET_PAD, y + 6), title, 20, sheet.width - 2 * SHEET_PAD)
        y += SHEET_TITLE_H
        for i, (path, score) in enumerate(hits):
            x = SHEET_PAD + i * (SHEET_THUMB + SHEET_PAD)
            sheet.paste(thumbnail(path, SHEET_THUMB), (x, y))
            _write(draw, (x, y + SHEET_THUMB + 3), Path(path).name, 13, SHEET_THUMB)
            _write(draw, (x, y + SHEET_THUMB + 19), f"{score:.3f}", 13, SHEET_THUMB, fill=MUTED)
        y += SHEET_THUMB + SHEET_LABEL_H + SHEET_PAD
    return sheet


# --------------------------------------------------------------------------------------------- gallery

def gallery_size(runs: int, rows: int, k: int) -> tuple[int, int]:
    """Pixel size of a gallery of ``rows`` query rows and ``runs`` columns of ``k`` thumbnails."""
    run_w = k * (GALLERY_THUMB + GALLERY_GAP) + GALLERY_RUN_SEP
    row_h = GALLERY_THUMB + 2 * GALLERY_GAP
    return max(GALLERY_LABEL_W + runs * run_w, GALLERY_MIN_W), GALLERY_TITLE_H + GALLERY_HEADER_H + rows * row_h


def gallery_image(title: str, columns: list[str], rows: list[dict], images: dict[str, str], k: int) -> Image.Image:
    """Rows of ``{"label", "target", "top": [names per column or None]}``; the target framed in green."""
    image = Image.new("RGB", gallery_size(len(columns), len(rows), k), BACKGROUND)
    draw = ImageDraw.Draw(image)
    run_w = k * (GALLERY_THUMB + GALLERY_GAP) + GALLERY_RUN_SEP
    row_h = GALLERY_THUMB + 2 * GALLERY_GAP
    for i, line in enumerate(title.splitlines()[:2]):
        _write(draw, (GALLERY_GAP, 4 + 18 * i), line, 15 if i == 0 else 12, image.width - 8, INK if i == 0 else MUTED)
    top = GALLERY_TITLE_H
    for c, name in enumerate(columns):
        _write(draw, (GALLERY_LABEL_W + c * run_w, top + 6), name, 14, run_w - GALLERY_RUN_SEP)
    top += GALLERY_HEADER_H
    cache: dict[str, Image.Image] = {}
    for r, row in enumerate(rows):
        y = top + r * row_h + GALLERY_GAP
        if row.get("first"):  # a rule above each new caption
            draw.line((0, y - GALLERY_GAP, image.width, y - GALLERY_GAP), fill=(200, 200, 200))
        _write(draw, (GALLERY_GAP, y + 2), row["label"], 13, GALLERY_LABEL_W - 2 * GALLERY_GAP)
        if row.get("sublabel"):
            _write(draw, (GALLERY_GAP, y + 22), row["sublabel"], 11, GALLERY_LABEL_W - 2 * GALLERY_GAP, MUTED)
        for c, names in enumerate(row["top"]):
            for j, name in enumerate(names or []):
                x = GALLERY_LABEL_W + c * run_w + j * (GALLERY_THUMB + GALLERY_GAP)
                if name not in cache:
                    cache[name] = thumbnail(images.get(name, ""), GALLERY_THUMB)
                image.paste(cache[name], (x, y))
                if name == row["target"]:
                    _frame(draw, x, y, GALLERY_THUMB, CORRECT)
    return image
