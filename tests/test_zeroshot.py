"""Zero-shot classification on a generated image folder, in several languages."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mlilt import DualEncoder, build_model
from conftest import mlilt_eval
from mlilt.evaluation.sets import EvalSetError
from mlilt.evaluation.zeroshot import parse_templates, read_classnames, read_imagefolder

COLOURS = {"blue": (0, 0, 255), "green": (0, 200, 0), "red": (230, 0, 0)}  # folder names sort b, g, r


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "colours"
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            shade = tuple(max(0, c - 15 * i) for c in rgb)
            Image.new("RGB", (10, 10), shade).save(root / name / f"{i}.png")
    (root / "classnames_en.txt").write_text("blue\ngreen\nred\n")
    (root / "classnames_de.json").write_text(json.dumps({"red": "rot", "green": "grün", "blue": "blau"}))
    return root


@pytest.fixture
def run(tmp_path, tiny_model_config, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    path = tmp_path / "run"
    build_model(tiny_model_config("lilt_lwa")).save_trained(path / "model")
    return path


def test_zeroshot_runs_in_every_language_with_class_names(run, folder, tmp_path):
    assert mlilt_eval(run, "--task", "zeroshot", "--dataset", folder, "--template", "de=ein Foto von {}",
                      "--template", "de=ein Bild von {}", "--workers", "0", "--quiet") == 0
    result = json.loads((run / "eval" / "zeroshot_colours.json").read_text())
    assert result["task"] == "zeroshot" and result["num_images"] == 12 and result["num_classes"] == 3
    assert list(result["results"]) == ["de", "en"]
    for scores in result["results"].values():
        assert set(scores) == {"top1", "top5"} and 0 <= scores["top1"] <= 100 and scores["top5"] == 100.0
    assert result["templates"] == {"de": ["ein Foto von {}", "ein Bild von {}"], "en": ["a photo of {}."]}
    assert result["classnames"]["de"] == ["blau", "grün", "rot"]


def test_perfectly_separable_case_scores_100(run, folder, monkeypatch):
    """Colour images, colour words: with encoders that read them off, every image is classified right."""
    vocab = {}

    def encode_image(self, pixels):
        return F.normalize(pixels.mean(dim=(2, 3)).float(), dim=-1)   # normalised RGB means: one axis per colour

    def encode_text(self, input_ids, attention_mask):
        if not vocab:
            vocab.update({w: self.text.tokenizer.convert_tokens_to_ids(w) for w in COLOURS})
        counts = torch.stack([(input_ids == vocab[w]).sum(1) for w in ("red", "green", "blue")], dim=1)
        return F.normalize(counts.float() * 10 - 1, dim=-1)            # strongly the named colour's axis

    monkeypatch.setattr(DualEncoder, "encode_image", encode_image)
    monkeypatch.setattr(DualEncoder, "encode_text", encode_text)
    (folder / "classnames_de.json").write_text(json.dumps({"red": "red", "green": "green", "blue": "blue"}))
    assert mlilt_eval(run, "--task", "zeroshot", "--dataset", folder, "--template", "de={}", "--no-cache",
                      "--workers", "0", "--quiet") == 0
    result = json.loads((run / "eval" / "zeroshot_colours.json").read_text())
    assert result["results"] == {"de": {"top1": 100.0, "top5": 100.0}, "en": {"top1": 100.0, "top5": 100.0}}


def test_class_name_and_template_errors(folder, tmp_path):
    classes, items = read_imagefolder(folder)
    assert classes == ["blue", "green", "red"] and len(items) == 12 and items[4][1] == 1
    (folder / "classnames_fr.txt").write_text("bleu\nvert\n")
    with pytest.raises(EvalSetError, match=r"classnames_fr\.txt:2: 2 class names for 3 class folders"):
        read_classnames(folder, "fr", classes)
    (folder / "classnames_it.json").write_text(json.dumps({"red": "rosso"}))
    with pytest.raises(EvalSetError, match=r"classnames_it\.json: no name for class folder\(s\) blue, green"):
        read_classnames(folder, "it", classes)
    with pytest.raises(FileNotFoundError, match="classnames_es.txt"):
        read_classnames(folder, "es", classes)
    assert parse_templates(["a photo of {}", "de=ein Foto von {}", "x=y {}"]) == {
        "*": ["a photo of {}", "x=y {}"], "de": ["ein Foto von {}"]}


def test_zeroshot_cli_errors(run, folder):
    with pytest.raises(ValueError, match="--dataset"):
        mlilt_eval(run, "--task", "zeroshot")
    with pytest.raises(EvalSetError, match="has no {}"):
        mlilt_eval(run, "--task", "zeroshot", "--dataset", folder, "--template", "a photo", "--quiet")
