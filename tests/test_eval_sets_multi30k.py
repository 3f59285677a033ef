"""Multi30K's reader on small files written in the published layout (data/task1/, gzipped sentences)."""

import gzip
import json
import warnings

import pytest
import torch
import yaml
from PIL import Image

from mlilt import build_model
from mlilt.evaluation.sets import EvalSetError, Multi30kSet, load_eval_set, read_spec, find_spec_file
from helpers_eval import mlilt_cli

pytestmark = pytest.mark.filterwarnings("ignore:multi30k. protocol .* selects")  # small files, not 1000 lines

WORDS = {"en": "the {} dog", "de": "der {} Hund", "fr": "le chien {}", "cs": "pes {}"}
TESTS = {"test_2016_flickr": (["en", "de", "fr", "cs"], [f"{1000092795 + i}.jpg" for i in range(6)]),
         "test_2017_flickr": (["en", "de", "fr"], [f"{22439193117 + i}_4183a49ec2.jpg" for i in range(5)]),
         "test_2017_mscoco": (["en", "de", "fr"], ["COCO_train2014_000000117071.jpg#367178",
                                                   "COCO_val2014_000000398076.jpg#657409",
                                                   "COCO_val2014_000000000042.jpg#1"])}


def write_task1(folder):
    """image_splits/<test>.txt and raw/<test>.<lang>.gz as multi30k/dataset publishes them."""
    (folder / "image_splits").mkdir(parents=True)
    (folder / "raw").mkdir()
    for test, (langs, names) in TESTS.items():
        (folder / "image_splits" / f"{test}.txt").write_text("\n".join(names) + "\n")
        for lang in langs:
            text = "\n".join(WORDS[lang].format(f"{test[-6:]}{i}") for i in range(len(names))) + "\n"
            (folder / "raw" / f"{test}.{lang}.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    return folder


def write_images(root):
    for test, (_, names) in TESTS.items():
        for i, name in enumerate(names):
            name = name.split("#")[0]
            folder = root / ("train2014" if "train2014" in name else "val2014" if "val2014" in name else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * i, len(test) * 5, 200 - 30 * i)).save(folder / name)
    return root


def test_each_test_set_is_a_protocol_with_its_languages(tmp_path):
    m30k = load_eval_set("multi30k", data_dir=write_task1(tmp_path / "task1"), image_root="/img")
    assert isinstance(m30k, Multi30kSet) and m30k.parallel
    assert m30k.protocols == list(TESTS) and m30k.default_protocol == "test_2016_flickr"
    for test, (langs, names) in TESTS.items():
        assert m30k.languages(test) == langs
        assert [im.name for im in m30k.images(test)] == [n.split("#")[0] for n in names]
        assert m30k.captions("de", test).texts[1] == WORDS["de"].format(f"{test[-6:]}1")
    assert [im.path for im in m30k.images("test_2017_mscoco")] == [
        "/img/train2014/COCO_train2014_000000117071.jpg", "/img/val2014/COCO_val2014_000000398076.jpg",
        "/img/val2014/COCO_val2014_000000000042.jpg"]
    assert m30k.images("test_2016_flickr")[0].path == "/img/1000092795.jpg"
    assert m30k.select_languages(["cs"], "test_2016_flickr") == {"cs": "cs"}
    with pytest.raises(EvalSetError, match="'cs' \\(Czech\\) is not a language in multi30k"):
        m30k.select_languages(["cs"], "test_2017_flickr")
    spec = read_spec(find_spec_file("multi30k"))
    assert set(spec["source"]["files"]) == {f"image_splits/{t}.txt" for t in TESTS} | {
        f"raw/{t}.{lang}.gz" for t, (langs, _) in TESTS.items() for lang in langs}
    assert all(len(entry["sha256"]) == 64 for entry in spec["source"]["files"].values())


def test_eval_and_install_from_a_clone(tmp_path, tiny_model_config, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    clone = write_task1(tmp_path / "clone" / "data" / "task1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # these files are not the published ones: their sha256 differ
        assert mlilt_cli("data", "multi30k", "--from", clone) == 0
    installed = tmp_path / "home" / "data" / "multi30k"
    assert (installed / "raw" / "test_2016_flickr.cs.gz").read_bytes() == (clone / "raw" / "test_2016_flickr.cs.gz"
                                                                          ).read_bytes()
    run = tmp_path / "run"
    torch.manual_seed(4)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 4, "strategy": "lilt_lwa"}))
    images = write_images(tmp_path / "images")
    assert mlilt_cli("eval", run, "--eval-set", "multi30k", "--image-root", images, "--workers", 0, "--quiet") == 0
    result = json.loads((run / "eval" / "multi30k_test_2016_flickr.json").read_text())
    assert list(result["results"]) == ["en", "de", "fr", "cs"] and set(result["text_probe"]) == {"de", "fr", "cs"}
    assert result["num_images"] == 6 and result["languages"]["cs"]["name"] == "Czech"
    assert mlilt_cli("eval", run, "--eval-set", "multi30k", "--protocol", "test_2017_mscoco", "--langs", "DE",
                     "--image-root", images, "--workers", 0, "--quiet") == 0
    coco = json.loads((run / "eval" / "multi30k_test_2017_mscoco.json").read_text())
    assert coco["num_images"] == 3 and coco["counts"] == {"de": {"images": 3, "captions": 3}}
