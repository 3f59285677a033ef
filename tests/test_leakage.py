"""Train/eval leakage: overlap by COCO id or file name, read from a run's config.yaml, and --exclude-overlap."""

import json

import pytest
import yaml
from PIL import Image

from mlilt import DualEncoder, build_model
from conftest import mlilt_eval
from mlilt.evaluation.leakage import overlapping, training_image_keys, training_source
from mlilt.evaluation.sets import load_eval_set

NAMES = ["COCO_train2014_000000061844.jpg", "COCO_train2014_000000061849.jpg", "COCO_val2014_000000127068.jpg",
         "COCO_train2014_000000000007.jpg", "COCO_val2014_000000061844.jpg", "COCO_val2014_000000000123.jpg",
         "COCO_train2014_000000555555.jpg", "COCO_val2014_000000999999.jpg"]
# Seen in training: 0 by file name, 1 by a 2017-style name, 2 by an ALBEF id, 4 (val2014, same COCO id as 0).
SEEN = [0, 1, 2, 4]
SPEC = {"name": "mini", "files": {"images": "names.txt", "captions": "caps_{lang}.txt"}, "languages": ["en", "de"],
        "image_paths": [{"match": "COCO_train2014_*", "path": "{image_root}/train2014/{name}"},
                        {"match": "COCO_val2014_*", "path": "{image_root}/val2014/{name}"}],
        "protocols": {"all": {"images": "*"}}}


@pytest.fixture
def training_manifest(tmp_path):
    rows = [{"image": "train2014/COCO_train2014_000000061844.jpg", "caption": "a cat"},
            {"image": "train2014/COCO_train2014_000000061844.jpg", "caption": "a cat again"},
            {"image": "coco2017/000000061849.jpg", "caption": "a dog"},
            {"image": "elsewhere/x.jpg", "caption": "a car", "image_id": "coco_127068"},
            {"image": "train2014/COCO_train2014_000000888888.jpg", "caption": "not in the set"},
            {"image": "pics/7.jpg", "caption": "a plain id means nothing elsewhere", "image_id": "7"}]
    path = tmp_path / "train" / "pairs.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def mini_set(tmp_path):
    root, images = tmp_path / "mini", tmp_path / "coco"
    root.mkdir()
    (root / "names.txt").write_text("\n".join(NAMES) + "\n")
    (root / "caps_en.txt").write_text("\n".join(f"a red cat {i}" for i in range(len(NAMES))))
    (root / "caps_de.txt").write_text("\r\n".join(f"eine Katze {i}" for i in range(len(NAMES))))
    for i, name in enumerate(NAMES):
        folder = images / ("train2014" if "train2014" in name else "val2014")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (30 * i, 200 - 20 * i, 90)).save(folder / name)
    spec = tmp_path / "mini.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    return spec, root, images


def test_overlap_by_coco_id_and_file_name(training_manifest, mini_set):
    spec, root, images = mini_set
    keys = training_image_keys(str(training_manifest), "jsonl", progress=False)
    assert {"COCO_train2014_000000061844.jpg", "coco:61844", "coco:61849", "coco:127068"} <= keys
    assert "coco:7" not in keys
    eval_set = load_eval_set(spec, data_dir=root, image_root=images)
    assert overlapping(eval_set.images("all"), keys) == SEEN


def test_training_source_from_run_config(tmp_path, training_manifest):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 3, "train_data": str(training_manifest), "train_format": "jsonl", "image_root": None}))
    assert training_source(tmp_path) == {"train_data": str(training_manifest), "train_format": "jsonl",
                                         "image_root": None, "split": "train"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"train_data": "x.json"}}))  # nested section
    assert training_source(tmp_path)["train_data"] == "x.json"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 3}))
    assert training_source(tmp_path) is None


def test_eval_warns_counts_and_excludes(tmp_path, monkeypatch, tiny_model_config, training_manifest, mini_set, capsys):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    spec, root, images = mini_set
    run = tmp_path / "run"
    build_model(tiny_model_config("lilt_ln")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "train_data": str(training_manifest),
                                                     "train_format": "jsonl"}))
    encoded = []
    original = DualEncoder.encode_image
    monkeypatch.setattr(DualEncoder, "encode_image", lambda self, px: encoded.append(len(px)) or original(self, px))
    common = ["--eval-set", spec, "--data-dir", root, "--image-root", images, "--workers", "0"]

    assert mlilt_eval(run, *common) == 0
    assert "warning: 4 of 8 mini/all images occur in the training data" in capsys.readouterr().err
    result = json.loads((run / "eval" / "mini_all.json").read_text())
    assert result["leakage"] == {"overlap": 4, "excluded": False, "excluded_count": 0,
                                 "train_data": str(training_manifest)}
    assert result["num_images"] == 8 and result["run"]["train_data"] == str(training_manifest)

    assert mlilt_eval(run, *common, "--exclude-overlap", "--out", tmp_path / "clean.json") == 0
    clean = json.loads((tmp_path / "clean.json").read_text())
    assert clean["leakage"]["overlap"] == 4 and clean["leakage"]["excluded"] and clean["leakage"]["excluded_count"] == 4
    assert clean["num_images"] == 4 and clean["counts"]["de"] == {"images": 4, "captions": 4}
    assert sum(encoded) == 8 + 4          # the excluded variant is its own cache entry
    assert clean["cache"]["images"] == "miss"

    # --train-data overrides the run's record; an unreadable source says so instead of failing.
    assert mlilt_eval(run, *common, "--train-data", tmp_path / "missing.jsonl", "--out", tmp_path / "n.json") == 0
    assert json.loads((tmp_path / "n.json").read_text())["leakage"]["overlap"] is None
    with pytest.raises(ValueError, match="--exclude-overlap: could not read the training data"):
        mlilt_eval(run, *common, "--train-data", tmp_path / "missing.jsonl", "--exclude-overlap")
