"""Pools and missing captions: a '<missing>' line, the shared pool (default) and each language's own."""

import json

import pytest
import torch
import yaml
from PIL import Image

import mlilt
from conftest import mlilt_eval
from mlilt import build_model
from mlilt.data.transforms import eval_transform
from mlilt.evaluation import cli
from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval
from mlilt.evaluation.sets import MISSING_CAPTION, EvalSetError, load_eval_set

OPTS = dict(precision="fp32", progress=False, cache=False)


@pytest.fixture
def tiny_run(tmp_path, tiny_model_config):
    run = tmp_path / "run"
    torch.manual_seed(6)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 6, "strategy": "lilt_lwa"}))
    return run


def by_hand(run, image_paths, texts, english=None):
    """Recalls (and the text probe against ``english``) computed directly, image i <-> caption i."""
    model = mlilt.load(run).eval()
    transform = eval_transform(model.vision.data_config, model.config.vision.img_size)
    with torch.inference_mode():
        images = model.encode_image(torch.stack([transform(Image.open(p).convert("RGB")) for p in image_paths]))
        tokens = model.text.tokenize(texts)
        recall = mlilt.retrieval_recall(images, model.encode_text(tokens["input_ids"], tokens["attention_mask"]),
                                        torch.arange(len(texts)))
        if english is None:
            return recall, None
        en = model.text.tokenize(english)
        pooled = lambda t: torch.nn.functional.normalize(model.text(t["input_ids"], t["attention_mask"]), dim=-1)  # noqa: E731
        probe = mlilt.retrieval_recall(pooled(en), pooled(tokens), torch.arange(len(texts)), ks=(1,))
    return recall, {"en->x@1": probe["TR@1"], "x->en@1": probe["IR@1"]}


def test_complete_languages_score_as_before_whatever_the_pool(emoji_like, tiny_run):
    root, names = emoji_like
    emoji = load_eval_set("emoji-xtd-v1")
    shared = evaluate_retrieval(load_for_eval(tiny_run), emoji, None, None, opts=EncodeOptions(**OPTS), quiet=True)
    own = evaluate_retrieval(load_for_eval(tiny_run), emoji, None, None, opts=EncodeOptions(**OPTS), quiet=True,
                             pool="own")
    assert shared["pool"] == {"kind": "shared", "images": 12} and own["pool"] == {"kind": "own", "images": 12}
    assert shared["results"] == own["results"] and shared["text_probe"] == own["text_probe"]
    assert shared["counts"] == {"en": {"images": 12, "captions": 12}, "ru": {"images": 12, "captions": 12}}
    ru = emoji.captions("ru")
    recall, probe = by_hand(tiny_run, [im.path for im in emoji.images()], ru.texts, emoji.captions("en").texts)
    assert shared["results"]["ru"] == pytest.approx(recall, abs=1e-6)
    assert shared["text_probe"]["ru"] == pytest.approx(probe, abs=1e-6)


def test_a_missing_line_leaves_the_image_out_of_that_language_and_of_the_shared_pool(emoji_like, tiny_run):
    root, names = emoji_like
    ru_file = root / "test_1kcaptions_ru.txt"
    lines = ru_file.read_text().splitlines()
    lines[4] = MISSING_CAPTION
    ru_file.write_text("\r\n".join(lines))
    emoji = load_eval_set("emoji-xtd-v1")
    assert emoji.captions("ru").missing == 1 and 4 not in emoji.captions("ru").image_index
    loaded = load_for_eval(tiny_run)
    shared = evaluate_retrieval(loaded, emoji, None, None, opts=EncodeOptions(**OPTS), quiet=True)
    assert shared["pool"] == {"kind": "shared", "images": 11} and shared["num_images"] == 12
    assert shared["counts"] == {"en": {"images": 11, "captions": 11}, "ru": {"images": 11, "captions": 11, "missing": 1}}
    assert {lang: facts["images"] for lang, facts in shared["languages"].items()} == {"en": 11, "ru": 11}
    pool = [i for i in range(12) if i != 4]
    images = [emoji.images()[i].path for i in pool]
    english = [emoji.captions("en").texts[i] for i in pool]
    recall, probe = by_hand(tiny_run, images, [lines[i] for i in pool], english)
    assert shared["results"]["ru"] == pytest.approx(recall, abs=1e-6)
    assert shared["text_probe"]["ru"] == pytest.approx(probe, abs=1e-6)
    assert shared["results"]["en"] == pytest.approx(by_hand(tiny_run, images, english)[0], abs=1e-6)

    own = evaluate_retrieval(loaded, emoji, None, None, opts=EncodeOptions(**OPTS), quiet=True, pool="own")
    assert own["counts"]["en"] == {"images": 12, "captions": 12} and own["results"]["ru"] == shared["results"]["ru"]
    assert own["results"]["en"] != shared["results"]["en"]
    # The probe pairs English and Russian image by image, on the images both have.
    assert own["text_probe"]["ru"] == pytest.approx(probe, abs=1e-6)
    # An empty line is still an error, which now says how to mark a missing caption.
    lines[4] = " "
    ru_file.write_text("\n".join(lines))
    with pytest.raises(EvalSetError, match=r"test_1kcaptions_ru\.txt:5: empty line .*<missing>"):
        load_eval_set("emoji-xtd-v1").captions("ru")


def test_languages_are_checked_before_the_model_loads_and_keep_the_set_order(emoji_like, tiny_run, monkeypatch):
    loads = []
    real_load = cli._load
    monkeypatch.setattr(cli, "_load", lambda args: loads.append(args.run) or real_load(args))
    with pytest.raises(EvalSetError, match="'xx' is not a language in emoji-xtd-v1"):
        mlilt_eval(tiny_run, "--eval-set", "emoji-xtd-v1", "--langs", "xx", "--workers", 0, "--quiet")
    assert loads == []
    assert mlilt_eval(tiny_run, "--eval-set", "emoji-xtd-v1", "--langs", "RU", "--workers", 0, "--quiet") == 0
    assert mlilt_eval(tiny_run, "--eval-set", "emoji-xtd-v1", "--langs", "EN", "--workers", 0, "--quiet") == 0
    result = json.loads((tiny_run / "eval" / "emoji-xtd-v1_test.json").read_text())
    assert list(result["results"]) == ["en", "ru"] and list(result["languages"]) == ["en", "ru"]
    assert list(result["counts"]) == ["en", "ru"] and result["languages"]["ru"]["code"] == "ru"
    assert result["eval_set_info"]["language_order"] == ["en", "ru"]


def test_a_sets_default_languages_are_the_default(emoji_like, tmp_path, monkeypatch):
    import yaml as yaml_module

    from mlilt.evaluation.sets import find_spec_file

    spec = yaml_module.safe_load(find_spec_file("emoji-xtd-v1").read_text())
    spec["default_languages"] = ["ru", "sw"]                 # sw has no file here: left out of the default
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "emoji-xtd-v1.yaml").write_text(yaml_module.safe_dump(spec))
    monkeypatch.setenv("MLILT_EVAL_SETS", str(tmp_path / "sets"))
    emoji = load_eval_set("emoji-xtd-v1")
    assert emoji.select_languages(None) == {"ru": "ru"}
    assert emoji.select_languages(["all"]) == {"en": "en", "ru": "ru"}
