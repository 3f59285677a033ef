"""Captions drawn by the gallery and the contact sheet: a font that has their script, else '?' and a warning."""

from __future__ import annotations

import unicodedata
import warnings

import pytest
from PIL import Image, ImageChops, ImageDraw

from mlilt import sheets

# Rare scripts, the first of them that no installed font draws stands for "a script without a font".
RARE = [0x1E900, 0x16E40, 0x1E100, 0x16A70, 0x11F04]  # Adlam, Medefaidrin, Nyiakeng Puachue Hmong, Tangsa, Kawi
CJK = "빨간 자동차 红色汽车"


@pytest.fixture(autouse=True)
def fresh_fonts(monkeypatch):
    sheets.font_for.cache_clear()
    monkeypatch.setattr(sheets, "_warned_scripts", set())
    yield
    sheets.font_for.cache_clear()


def _text_fonts() -> list[str]:
    return [f for f in sheets._font_files() if "lastresort" not in f.lower()]


def _uncovered() -> int:
    fonts = _text_fonts()
    found = next((c for c in RARE if not any(c in sheets._charmap(f) for f in fonts)), None)
    if found is None:
        pytest.skip("every rare script tried has an installed font here")
    return found


def _drawn(text: str) -> Image.Image:
    image = Image.new("RGB", (300, 30), sheets.BACKGROUND)
    sheets._write(ImageDraw.Draw(image), (2, 4), text, 16, 296)
    return image


def test_a_script_without_a_font_is_drawn_as_question_marks_with_a_warning():
    char = chr(_uncovered())
    script = unicodedata.name(char).split()[0]
    caption = f"{char}{char} car"
    with pytest.warns(UserWarning, match=rf"no installed font draws {script} .*drawn as '\?'.*install a font"):
        drawn = _drawn(caption)
    # Not the Last Resort font's boxes: the same pixels as question marks in the font of the Latin part.
    assert "lastresort" not in sheets.font_for(caption, 16).path.lower()
    assert ImageChops.difference(drawn, _drawn("?? car")).getbbox() is None
    assert ImageChops.difference(drawn, _drawn(" car")).getbbox() is not None  # something is drawn for them


def test_the_warning_names_each_script_once():
    char = chr(_uncovered())
    with pytest.warns(UserWarning) as first:
        _drawn(f"{char} one")
        _drawn(f"{char}{char} two")
    assert len([w for w in first if "no installed font" in str(w.message)]) == 1


def test_cjk_captions_get_a_font_with_their_glyphs():
    needed = {ord(c) for c in CJK if not c.isspace()}
    if not any(needed <= sheets._charmap(f) for f in _text_fonts()):
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk, as `make` does)")
    font = sheets.font_for(CJK, 16)
    assert needed <= sheets._charmap(font.path) and "lastresort" not in font.path.lower()
    assert sheets._drawable(CJK, font) == CJK
    # Latin and Cyrillic keep the first font (DejaVu Sans), which draws them.
    assert sheets.font_for("a red car красная", 16).path == sheets._font_files()[0]


# Scripts whose Noto font (Debian fonts-noto-core, as `make` installs) has no Latin letters.
NO_LATIN = [0x0D1A, 0x0995, 0x1200, 0x0B95, 0x1780, 0x10D0]  # Malayalam, Bengali, Ethiopic, Tamil, Khmer, Georgian


def test_a_language_code_before_a_caption_in_another_font_keeps_both_scripts():
    """'ml: <Malayalam>': no font has both, so each run is drawn in a font that has it, with no '?' and no
    warning."""
    fonts = _text_fonts()
    char = next((c for c in NO_LATIN if any(c in sheets._charmap(f) for f in fonts)
                 and not any({c, ord("m")} <= sheets._charmap(f) for f in fonts)), None)
    if char is None:
        pytest.skip("every script tried here is missing, or shares a font with Latin")
    caption = f"ml: {chr(char) * 3} car"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = sheets._font_runs(caption, 16)
        drawn = _drawn(caption)
    assert "".join(part for part, _ in runs) == caption and len(runs) == 3
    for part, font in runs:
        assert {ord(c) for c in part if not c.isspace()} <= sheets._charmap(font.path)
    assert runs[0][1].path == runs[2][1].path != runs[1][1].path  # back to the Latin font after the caption
    assert ImageChops.difference(drawn, _drawn("ml: ??? car")).getbbox() is not None
