"""emoji-XTD v2 in every CLDR locale, on a handful of emoji: the 60 % rule, coverage in meta.json, <missing>
lines, the eight caption files and everything else untouched, an earlier build extended to a fresh build's bytes.

Reading every CLDR locale's names takes about 3.5 s of CPU; the builds here do it twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from test_emoji_xtd_v2 import HANDFUL, fake_twemoji

from mlilt.data import emoji_xtd as ex
from mlilt.evaluation.sets import MISSING_CAPTION, load_eval_set

NEW_FILES = ("test_1kcaptions_", "meta.json")  # what extending may write; any other file keeps its bytes


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> dict[str, Path]:
    """``eight``: a v2 build as builder version 2 wrote it (eight languages); ``fresh``: a build of today."""
    root = tmp_path_factory.mktemp("emoji-cldr")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ex.TWEMOJI_ENV, str(fake_twemoji(root / "twemoji")))
        mp.setattr(ex.build, "_candidates", lambda names: [e for e in HANDFUL if all(e in n for n in names.values())])
        eight = root / "eight"
        eight.mkdir()
        ex.build._build_v2(eight, image_size=64, progress=False, font_path=None, cldr_dir=None)
        fresh = ex.build_emoji_xtd(root / "fresh", progress=False)
    return {"eight": eight, "fresh": fresh}


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def meta(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text(encoding="utf-8"))


def test_an_earlier_build_is_extended_to_a_fresh_builds_bytes(builds, tmp_path):
    extended = tmp_path / "v2"
    shutil.copytree(builds["eight"], extended)
    images_before = {p: p.stat().st_mtime_ns for p in extended.rglob("*.png")}
    assert meta(extended)["builder_version"] == ex.V2_EIGHT_LANGUAGES
    assert ex.build_emoji_xtd(extended, progress=False) == extended
    assert hashes(extended) == hashes(builds["fresh"])  # every file, meta.json included
    assert {p: p.stat().st_mtime_ns for p in extended.rglob("*.png")} == images_before  # nothing redrawn
    assert meta(extended)["builder_version"] == ex.BUILDER_VERSIONS[2]
    assert ex.build_emoji_xtd(extended, progress=False) == extended and hashes(extended) == hashes(builds["fresh"])


def test_images_split_training_and_the_eight_caption_files_keep_their_bytes(builds):
    before, after = hashes(builds["eight"]), hashes(builds["fresh"])
    kept = {name: sha for name, sha in before.items() if name != "meta.json"}
    assert {f"test_1kcaptions_{lang}.txt" for lang in ex.LANGUAGES} <= set(kept)
    assert {"train.jsonl", "test_image_names.txt", "val_image_names.txt", "val_captions_en.txt"} <= set(kept)
    assert {name: after[name] for name in kept} == kept
    added = set(after) - set(before)
    assert added and all(name.startswith(NEW_FILES[0]) for name in added)
    old, new = meta(builds["eight"]), meta(builds["fresh"])
    changed = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    assert changed == {"builder_version", "languages", "default_languages", "captions", "cldr_locales", "sources"}
    assert {k: v for k, v in new["sources"].items() if k != "cldr"} == \
        {k: v for k, v in old["sources"].items() if k != "cldr"}


def test_real_cldr_locales_recorded_and_exposed_to_eval(builds):
    record = meta(builds["fresh"])["cldr_locales"]
    n = record["test_concepts"]
    assert n == len(set((builds["fresh"] / "test_image_names.txt").read_text().splitlines())) // len(ex.STYLES)
    assert set(record["included"]) | set(record["left_out"]) == set(ex.cldr_locales())
    assert "root" not in record["left_out"] and set(ex.LANGUAGES) <= set(record["included"])
    for locale, cover in {**record["included"], **record["left_out"]}.items():
        assert (cover["named"] >= ex.COVERAGE_THRESHOLD * n) == (locale in record["included"]), locale
        assert (builds["fresh"] / f"test_1kcaptions_{locale}.txt").is_file() == (locale in record["included"])
    assert {"sw", "zu", "am", "sr_Latn", "zh_Hant"} <= set(record["included"])  # CLDR's file codes are kept
    assert {"en_GB", "es_419"} <= set(record["left_out"])  # their own names only override a few of the parent's
    emoji_xtd = load_eval_set("emoji-xtd", data_dir=builds["fresh"])
    assert emoji_xtd.languages() == meta(builds["fresh"])["languages"] == list(record["included"])
    assert list(emoji_xtd.select_languages(None).values()) == list(ex.LANGUAGES)  # mlilt eval's default: the eight
    assert list(emoji_xtd.select_languages(["all"]).values()) == emoji_xtd.languages()  # --langs all: every one


def cldr_with(tmp_path: Path, locales: dict[str, dict[str, str]]) -> Path:
    """A CLDR ``common`` folder: the eight languages' real files plus ``locales`` (code -> {emoji: name})."""
    root = tmp_path / "cldr"
    for sub in ("annotations", "annotationsDerived"):
        (root / sub).mkdir(parents=True)
        for lang in ex.LANGUAGES:
            (root / sub / f"{lang}.xml").symlink_to(ex.find_cldr() / sub / f"{lang}.xml")
    for code, names in locales.items():
        entries = "".join(f'<annotation cp="{e}">kw</annotation><annotation cp="{e}" type="tts"> {n}  x </annotation>'
                          for e, n in names.items())
        (root / "annotations" / f"{code}.xml").write_text(f"<ldml><annotations>{entries}</annotations></ldml>")
    return root


def test_the_threshold_and_missing_lines(builds, tmp_path):
    root = tmp_path / "v2"
    shutil.copytree(builds["eight"], root)
    listed = [line for line in (root / "test_image_names.txt").read_text().splitlines()]
    concepts = list(dict.fromkeys(ex.emoji_from_id(name.removesuffix(".png").split("/")[1]) for name in listed))
    k = math.ceil(ex.COVERAGE_THRESHOLD * len(concepts))  # the fewest names that pass
    assert 2 <= k < len(concepts)
    names = {e: f"name {i}" for i, e in enumerate(concepts)}
    locales = {"xa": dict(list(names.items())[:k]), "xb": dict(list(names.items())[:k - 1]),
               "xc_Latn": names, "xd": {}}
    record = ex.add_cldr_locales(root, ex.LANGUAGES, "2.1", cldr_dir=cldr_with(tmp_path, locales), progress=False)
    assert list(record["included"]) == [*ex.LANGUAGES, "xa", "xc_Latn"]
    assert record["included"]["xa"] == {"named": k, "share": round(k / len(concepts), 4)}
    assert record["left_out"] == {"xb": {"named": k - 1, "share": round((k - 1) / len(concepts), 4)},
                                  "xd": {"named": 0, "share": 0.0}}
    assert record["test_concepts"] == len(concepts) and record["shared_pool_concepts"] == k
    assert meta(root)["cldr_locales"] == record and meta(root)["languages"] == list(record["included"])
    assert sorted(p.name for p in root.glob("test_1kcaptions_x*")) == ["test_1kcaptions_xa.txt",
                                                                        "test_1kcaptions_xc_Latn.txt"]
    xa = (root / "test_1kcaptions_xa.txt").read_text(encoding="utf-8").split("\n")
    assert xa[-1] == "" and len(xa) - 1 == len(listed)  # line-aligned, LF, a final newline
    for name, line in zip(listed, xa):
        emoji = ex.emoji_from_id(name.removesuffix(".png").split("/")[1])
        expected = f"{names[emoji]} x" if emoji in locales["xa"] else MISSING_CAPTION
        assert line == expected, (name, line)  # whitespace collapsed as for the eight
    assert xa.count(MISSING_CAPTION) == (len(concepts) - k) * len(ex.STYLES)
    assert MISSING_CAPTION not in (root / "test_1kcaptions_xc_Latn.txt").read_text(encoding="utf-8").splitlines()
    assert not list(root.glob(".*.tmp"))
