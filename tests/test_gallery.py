"""The retrieval gallery: recorded by mlilt eval for captions chosen by rule, drawn by mlilt report."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from PIL import Image

from conftest import CAPTIONS, caption, mlilt_eval
from mlilt import report as rp
from mlilt.evaluation import gallery
from mlilt.evaluation.harness import EncodeOptions, encode_images, encode_texts
from mlilt.model import build_model, load
from mlilt.sheets import (CORRECT, GALLERY_GAP, GALLERY_HEADER_H, GALLERY_LABEL_W, GALLERY_RUN_SEP, GALLERY_THUMB,
                          GALLERY_TITLE_H, gallery_size)


def make_run(path, tiny_model_config, seed):
    torch.manual_seed(seed)
    build_model(tiny_model_config("lilt_lwa")).save_trained(path / "model")
    (path / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "strategy": "lilt_lwa"}))
    return path


def test_pick_targets_is_a_fixed_rule():
    assert gallery.pick_targets(465) == [58, 174, 290, 406]
    assert gallery.pick_targets(12) == [1, 4, 7, 10]
    assert gallery.pick_targets(2) == [0, 1]


def test_eval_records_top5_and_report_draws_the_gallery(emoji_like, tiny_model_config, tmp_path):
    root, names = emoji_like
    runs = [make_run(tmp_path / f"lwa-{s}", tiny_model_config, s) for s in (1, 2)]
    for run in runs:
        assert mlilt_eval(run, "--eval-set", "emoji-xtd-v1", "--precision", "fp32", "--workers", "0", "--quiet") == 0
    result = json.loads((runs[0] / "eval" / "emoji-xtd-v1_test.json").read_text())
    record = result["gallery"]
    assert [q["target"] for q in record["queries"]] == [names[i] for i in (1, 4, 7, 10)]

    # The recorded top 5 are the direct computation's.
    model = load(runs[0])
    opts = EncodeOptions(precision="fp32", progress=False, cache=False)
    images = encode_images(model, [str(root / "images" / n) for n in names], opts)
    for q in record["queries"]:
        i = names.index(q["target"])
        assert q["captions"] == {lang: caption(template, i) for lang, template in CAPTIONS.items()}
        for lang in CAPTIONS:
            scores = images @ encode_texts(model, [q["captions"][lang]], opts)["embeds"][0]
            expected = [names[j] for j in scores.argsort(descending=True)[:5].tolist()]
            assert [name for name, _ in q["top"][lang]] == expected
            assert [s for _, s in q["top"][lang]] == pytest.approx(sorted(scores.tolist(), reverse=True)[:5], abs=1e-4)
    assert set(record["images"]) >= {q["target"] for q in record["queries"]}
    assert record["images"][names[1]] == str(root / "images" / names[1])

    # The report draws it beside the tables and links it from the Markdown.
    files = [run / "eval" / "emoji-xtd-v1_test.json" for run in runs]
    written = rp.write_report(rp.build_report(rp.load_results(files), group_by="run"), tmp_path / "reports" / "demo")
    png = tmp_path / "reports" / "demo.gallery.png"
    assert png in written
    assert "[demo.gallery.png](demo.gallery.png)" in (tmp_path / "reports" / "demo.md").read_text()
    rows = len(record["queries"]) * len(CAPTIONS)
    with Image.open(png) as im:
        assert im.size == gallery_size(2, rows, 5)
        # The correct image is framed in green exactly where a run retrieved it.
        run_w = 5 * (GALLERY_THUMB + GALLERY_GAP) + GALLERY_RUN_SEP
        frames = 0
        for c, path in enumerate(files):
            queries = json.loads(path.read_text())["gallery"]["queries"]
            for r, (q, lang) in enumerate((q, lang) for q in queries for lang in CAPTIONS):
                y = GALLERY_TITLE_H + GALLERY_HEADER_H + r * (GALLERY_THUMB + 2 * GALLERY_GAP) + GALLERY_GAP
                for j, (name, _) in enumerate(q["top"][lang]):
                    x = GALLERY_LABEL_W + c * run_w + j * (GALLERY_THUMB + GALLERY_GAP)
                    framed = im.getpixel((x + 1, y + GALLERY_THUMB // 2)) == CORRECT
                    assert framed == (name == q["target"]), (path, q["target"], lang, name)
                    frames += framed
        assert frames > 0  # (seeds 1 and 2 put the correct image in some top 5)


def test_report_without_recorded_galleries_has_none(tmp_path):
    from test_report import result, write

    path = write(tmp_path, "a.json", result())
    written = rp.write_report(rp.build_report(rp.load_results([path])), tmp_path / "r")
    assert not any(p.name.endswith(".gallery.png") for p in written)
    assert "gallery" not in (tmp_path / "r.md").read_text()


def test_a_language_added_later_joins_the_recorded_gallery(emoji_like, tiny_model_config, tmp_path):
    run = make_run(tmp_path / "lwa", tiny_model_config, 1)
    for lang in ("en", "ru"):
        assert mlilt_eval(run, "--eval-set", "emoji-xtd-v1", "--langs", lang, "--no-probe", "--precision", "fp32",
                          "--workers", "0", "--quiet") == 0
    record = json.loads((run / "eval" / "emoji-xtd-v1_test.json").read_text())["gallery"]
    assert all(set(q["top"]) == {"en", "ru"} and set(q["captions"]) == {"en", "ru"} for q in record["queries"])
