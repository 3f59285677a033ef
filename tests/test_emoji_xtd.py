"""Tests of the emoji-XTD builder.

They read the installed sources: Debian's ``fonts-noto-color-emoji`` and ``unicode-cldr-core``, and
need Pillow with RAQM (Debian's ``libraqm0``). The v1 set is built once per session (about 15 s); emoji-XTD v2 is tested on a handful of
emoji in test_emoji_xtd_v2.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

import pytest

from mlilt.data import emoji_xtd as ex


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """One emoji-XTD build shared by the whole session."""
    return ex.build_emoji_xtd(tmp_path_factory.mktemp("data") / "emoji-xtd", version=1, progress=False)


@pytest.fixture(scope="session")
def meta(built) -> dict:
    return json.loads((built / "meta.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def train_ids(built) -> list[str]:
    rows = [json.loads(line) for line in (built / "train.jsonl").read_text("utf-8").splitlines()]
    return [row["image_id"] for row in rows]


@pytest.fixture(scope="session")
def test_ids(built) -> list[str]:
    names = (built / "test_image_names.txt").read_text("utf-8").splitlines()
    return [name.removesuffix(".png") for name in names]


@pytest.fixture(scope="session")
def image_hashes(built, train_ids, test_ids) -> dict[str, str]:
    from PIL import Image

    hashes = {}
    for item_id in train_ids + test_ids:
        with Image.open(built / "images" / f"{item_id}.png") as im:
            hashes[item_id] = hashlib.sha256(im.convert("RGB").tobytes()).hexdigest()
    return hashes


# --------------------------------------------------------------------------- the built set


def test_counts_and_layout(built, meta, train_ids, test_ids):
    counts = meta["counts"]
    assert counts["items"] >= 1800
    assert counts["items"] == len(train_ids) + len(test_ids) == counts["train"] + counts["test"]
    assert len(set(train_ids) | set(test_ids)) == counts["items"]
    assert 0.20 < counts["test"] / counts["items"] < 0.30
    assert sorted(p.stem for p in (built / "images").iterdir()) == sorted(train_ids + test_ids)
    assert counts["dropped"]["skin_tone"] > 1000 and counts["dropped"]["no_glyph"] > 0
    assert meta["test_image_names_sha256"] == hashlib.sha256(
        (built / "test_image_names.txt").read_bytes()).hexdigest()
    assert meta["languages"] == list(ex.LANGUAGES)
    assert not list(built.parent.glob(".emoji-xtd.*"))  # the temporary build directory is gone


def test_train_manifest(built):
    en = ex.load_cldr_names("en")
    for line in (built / "train.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        assert set(row) == {"image", "caption", "image_id"}
        assert row["image"] == f"images/{row['image_id']}.png"
        assert (built / row["image"]).is_file()
        assert row["caption"] == en[ex.emoji_from_id(row["image_id"])]


def test_captions_in_all_languages(built, test_ids):
    names = {lang: ex.load_cldr_names(lang) for lang in ex.LANGUAGES}
    for lang in ex.LANGUAGES:
        raw = (built / f"test_1kcaptions_{lang}.txt").read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        lines = raw.decode("utf-8").split("\n")[:-1]
        assert len(lines) == len(test_ids)
        assert all(line.strip() for line in lines)
        assert lines[0] == names[lang][ex.emoji_from_id(test_ids[0])]
    zh = (built / "test_1kcaptions_zh.txt").read_text("utf-8").splitlines()
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in line) for line in zh) > 0.9 * len(zh)


def test_images_are_white_rgb_squares(built, test_ids):
    from PIL import Image

    for item_id in test_ids[:20]:
        with Image.open(built / "images" / f"{item_id}.png") as im:
            assert im.mode == "RGB" and im.size == (ex.DEFAULT_IMAGE_SIZE,) * 2
            assert im.getpixel((0, 0)) == (255, 255, 255)
            assert im.convert("L").getextrema()[0] < 200  # there is ink


def test_no_group_straddles_the_split(train_ids, test_ids):
    train_keys = {ex.group_key(ex.emoji_from_id(i)) for i in train_ids}
    test_keys = {ex.group_key(ex.emoji_from_id(i)) for i in test_ids}
    assert not train_keys & test_keys


def test_no_test_image_equals_a_train_image(train_ids, test_ids, image_hashes):
    assert not {image_hashes[i] for i in train_ids} & {image_hashes[i] for i in test_ids}


def test_pixel_identical_flags_share_a_side(train_ids, test_ids, image_hashes):
    side = {**dict.fromkeys(train_ids, "train"), **dict.fromkeys(test_ids, "test")}
    us, um = ex.emoji_id("🇺🇸"), ex.emoji_id("🇺🇲")  # United States, U.S. Outlying Islands
    assert image_hashes[us] == image_hashes[um] and side[us] == side[um]


def test_split_is_reproducible(test_ids, train_ids, image_hashes):
    triples = [(i, ex.emoji_from_id(i), image_hashes[i]) for i in train_ids + test_ids]
    random.Random(0).shuffle(triples)
    splits = ex.assign_splits(triples)
    assert [i for i in sorted(splits, key=_cp_order) if splits[i] == "test"] == test_ids
    assert ex.assign_splits(reversed(triples)) == splits


def _cp_order(item_id: str) -> list[int]:
    return [int(h, 16) for h in item_id.split("_")]


def test_reuses_an_existing_build(built, meta):
    assert ex.build_emoji_xtd(built, version=1) == built
    with pytest.raises(FileExistsError):
        ex.build_emoji_xtd(built, version=1, image_size=64)
    with pytest.raises(FileExistsError):  # a v1 build is no v2 build
        ex.build_emoji_xtd(built)


# --------------------------------------------------------------------------- pure functions

ENGLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
SCOTLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"


@pytest.mark.parametrize("variants", [
    ["👨‍⚕", "👩‍⚕", "🧑‍⚕", "👩‍⚕️"],                # health workers, with and without U+FE0F
    ["🏃", "🏃‍♂", "🏃‍♀️"],                             # person / man / woman running
    ["👨‍🦰", "👩‍🦰", "🧑‍🦰"],                          # red hair
    ["👨", "👩", "🧑"],
    ["🎅", "🤶", "🧑‍🎄"],
    ["🕐", "🕑", "🕧"],                                  # clock faces
    ["#⃣", "1⃣", "#️⃣", "🔟", "#"],                      # keycaps and their bases
    ["👪", "👨‍👩‍👦", "👩‍👧", "👨‍👨‍👧‍👦"],            # families
    ["💏", "👩‍❤‍💋‍👨", "👨‍❤️‍💋‍👨"],                  # kiss
    ["💑", "👩‍❤‍👨", "👩‍❤️‍👩"],                        # couple with heart
    ["👫", "👬", "🧑‍🤝‍🧑"],                            # holding hands
    ["🌑", "🌓", "🌘"],                                  # moon phases
    ["👍", "👍🏻", "👍🏿"],                               # skin tones
    ["🐈", "🐈‍⬛"],                                     # ZWJ variant of a base emoji
])
def test_near_duplicates_share_a_group_key(variants):
    assert len({ex.group_key(v) for v in variants}) == 1


@pytest.mark.parametrize("a, b", [
    ("😀", "🐶"), ("👩‍⚕", "👩‍🌾"), ("🇺🇸", "🇫🇷"), ("🕐", "⏰"), ("👨", "👦"), ("❤", "💙"),
    ("💏", "💑"),
    (ENGLAND, SCOTLAND),
])
def test_unrelated_emoji_have_different_group_keys(a, b):
    assert ex.group_key(a) != ex.group_key(b)


def test_split_of_is_pure_and_about_a_quarter():
    keys = [f"key-{i}" for i in range(20000)]
    first = [ex.split_of(k) for k in keys]
    assert first == [ex.split_of(k) for k in keys]
    assert set(first) == {"train", "test"}
    assert 0.23 < first.count("test") / len(keys) < 0.27
    assert ex.split_of("clock") == ex.split_of("clock")


def test_load_cldr_names():
    en, pl, zh = (ex.load_cldr_names(lang) for lang in ("en", "pl", "zh"))
    assert en["😀"] == "grinning face"
    assert pl["😀"] == "szeroko uśmiechnięta twarz"
    assert en["🇺🇸"] == "flag: United States"           # from annotationsDerived
    assert en["👩‍❤‍💋‍👨"] == "kiss: woman, man"       # CLDR keys carry no U+FE0F
    assert zh["👩‍⚕"] == "女医生"
    assert not any("\ufe0f" in k for k in en)
    for lang in ex.LANGUAGES:
        assert len(ex.load_cldr_names(lang)) > 3000


def test_emoji_ids():
    assert ex.emoji_id("😀") == "1f600"
    assert ex.emoji_id("🇺🇸") == "1f1fa_1f1f8"
    assert ex.emoji_id("#️⃣") == "23_20e3"
    assert ex.emoji_from_id("1f469_200d_2695") == "👩‍⚕"


def test_renderer_detects_missing_and_unshaped_glyphs():
    renderer = ex.EmojiRenderer()
    image, text = renderer.render("😀")
    assert image.size == (ex.DEFAULT_IMAGE_SIZE,) * 2 and text == "😀"
    assert renderer.render("{") == (None, "no_glyph")                    # not in the font
    assert renderer.render("😀\u200d😀") == (None, "multi_glyph")       # no such ligature
    assert renderer.render("\U0001F1E6\U0001F1E6") == (None, "no_glyph")  # Noto's "?" flag
    assert renderer.render("👩‍❤‍💋‍👨")[0] is not None                  # shaped without U+FE0F


def test_missing_sources_name_the_apt_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-noto-color-emoji"):
        ex.find_font(tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(FileNotFoundError, match="apt-get install unicode-cldr-core"):
        ex.find_cldr(tmp_path)


def test_subcommand_registration():
    parser = argparse.ArgumentParser(prog="mlilt data")
    ex.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["emoji-xtd", "--out", "somewhere", "--force"])
    assert args.out == Path("somewhere") and args.force and args.func is ex._run_cli
    assert parser.parse_args(["emoji-xtd"]).out is None
