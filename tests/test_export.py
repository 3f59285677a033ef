"""mlilt export (hub-ready folder and model card), hub ids through an offline HF cache, `mlilt eval` with no run."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
import torch
import yaml

import mlilt
from conftest import mlilt_eval
from mlilt.cli import main as mlilt_main
from mlilt.export import base_models
from mlilt.model import build_model


@pytest.fixture
def evaluated_run(tmp_path, tiny_model_config, emoji_like):
    """A run with a config.yaml naming emoji-xtd as its training data and an emoji-xtd eval file."""
    run = tmp_path / "runs" / "emoji-xtd" / "lilt_lwa-s3"
    torch.manual_seed(3)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"train_data": "emoji-xtd-v1", "seed": 3, "strategy": "lilt_lwa"}))
    assert mlilt_eval(run, "--eval-set", "emoji-xtd-v1", "--precision", "fp32", "--workers", "0", "--quiet") == 0
    return run


def embeddings(model) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 32, 32)
    tokens = model.text.tokenize(["a red car", "лицо cat"])
    with torch.no_grad():
        return model.encode_image(pixels), model.encode_text(tokens["input_ids"], tokens["attention_mask"])


def card_parts(text: str) -> tuple[dict, str]:
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, "no YAML front matter"
    return yaml.safe_load(match.group(1)), match.group(2)


def card_tables(body: str) -> dict[str, dict[str, list[float]]]:
    """{result file name: {language: [TR@1 … mean]}} from the card's Markdown tables."""
    tables, current = {}, None
    for line in body.splitlines():
        name = re.search(r"`([^`]+\.json)`", line)
        if name:
            current = tables.setdefault(name.group(1), {})
        elif current is not None and line.startswith("| ") and not line.startswith("| language"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            current[cells[0]] = [float(c) for c in cells[1:]]
    return tables


def test_export_folder_card_and_reload(evaluated_run, tmp_path, capsys):
    out = tmp_path / "export"
    assert mlilt_main(["export", str(evaluated_run), str(out), "--repo-id", "acme/tiny-lilt",
                       "--license", "apache-2.0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "model_config.json",
                                                     "trained.safetensors"]
    front, body = card_parts((out / "README.md").read_text(encoding="utf-8"))
    assert front["library_name"] == "mlilt" and front["license"] == "apache-2.0"
    assert front["language"] == ["en", "ru"] and "mlilt" in front["tags"]
    assert "base_model" not in front  # the tiny towers are local folders, not hub models
    assert 'mlilt.load("acme/tiny-lilt")' in body

    # The card's table is the eval file's numbers.
    result = json.loads((evaluated_run / "eval" / "emoji-xtd-v1_test.json").read_text())
    table = card_tables(body)["emoji-xtd-v1_test.json"]
    keys = ["TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean"]
    assert table == {lang: [round(scores[k], 2) for k in keys] for lang, scores in result["results"].items()}

    original = embeddings(mlilt.load(evaluated_run))
    for mine, theirs in zip(original, embeddings(mlilt.load(out))):
        assert torch.equal(mine, theirs)


def test_base_models_named_by_hub_id():
    zoo = {"text": {"name_or_path": "zoo:multilingual-e5-small"},
           "vision": {"name": "tf_efficientnet_lite0", "weights": "zoo:tf_efficientnet_lite0"}}
    assert base_models(zoo) == ["intfloat/multilingual-e5-small", "timm/tf_efficientnet_lite0.in1k"]
    hub = {"text": {"name_or_path": "bert-base-multilingual-cased"},
           "vision": {"name": "deit_base_patch16_224", "pretrained": True}}
    assert base_models(hub) == ["bert-base-multilingual-cased", "timm/deit_base_patch16_224.fb_in1k"]


def lay_out_hub_cache(cache, repo_id: str, folder) -> str:
    """Put ``folder`` into ``cache`` as huggingface_hub does: blobs, a snapshot of symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return revision


def test_hub_id_from_an_offline_cache(evaluated_run, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    out = tmp_path / "export"
    mlilt.export.export(evaluated_run, out, repo_id="acme/tiny-lilt")
    cache = tmp_path / "hf" / "hub"
    revision = lay_out_hub_cache(cache, "acme/tiny-lilt", out)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert constants.HF_HUB_OFFLINE  # set by conftest: the cache is all there is

    from_hub = mlilt.load("acme/tiny-lilt")
    for mine, theirs in zip(embeddings(mlilt.load(evaluated_run)), embeddings(from_hub)):
        assert torch.equal(mine, theirs)
    model, _, preprocess = mlilt.create_model_and_transforms("acme/tiny-lilt")
    assert torch.equal(model.encode_image(torch.zeros(1, 3, 32, 32)),
                       from_hub.encode_image(torch.zeros(1, 3, 32, 32)))

    # mlilt eval takes the id too: the set it was trained on (config.yaml went along), results in ./eval.
    monkeypatch.chdir(tmp_path)
    assert mlilt_eval("acme/tiny-lilt", "--langs", "ru", "--precision", "fp32", "--workers", "0", "--quiet") == 0
    result = json.loads((tmp_path / "eval" / "acme--tiny-lilt_emoji-xtd-v1_test.json").read_text())
    assert result["run"]["name"] == "acme/tiny-lilt" and set(result["results"]) == {"ru"}
    assert (cache / "models--acme--tiny-lilt" / "snapshots" / revision / "eval").exists() is False

    with pytest.raises(FileNotFoundError, match=r"acme/missing: neither a local directory nor a hub repo .*"
                                                r"HF_HUB_OFFLINE is set and it is not in the HF cache"):
        mlilt.load("acme/missing")
    assert mlilt_main(["search", "acme/missing", "--images", str(tmp_path), "q"]) == 2
    assert "acme/missing: neither a local directory nor a hub repo" in capsys.readouterr().err


def test_eval_without_a_run_takes_the_latest_on_its_training_set(evaluated_run, tiny_model_config, tmp_path,
                                                                 monkeypatch, capsys):
    older = tmp_path / "runs" / "emoji-xtd" / "clip-s0"
    build_model(tiny_model_config("clip")).save_trained(older / "model")
    (older / "config.yaml").write_text(yaml.safe_dump({"train_data": "emoji-xtd-v1", "seed": 0}))
    os.utime(older / "model" / "model_config.json", ns=(1, 1))  # written long ago
    monkeypatch.chdir(tmp_path)
    (evaluated_run / "eval" / "emoji-xtd-v1_test.json").unlink()
    capsys.readouterr()
    assert mlilt_eval("--langs", "ru", "--precision", "fp32", "--workers", "0", "--quiet") == 0
    err = capsys.readouterr().err
    assert "most recent run under ./runs: runs/emoji-xtd/lilt_lwa-s3" in err
    result = json.loads((evaluated_run / "eval" / "emoji-xtd-v1_test.json").read_text())
    assert result["eval_set"] == "emoji-xtd-v1" and set(result["results"]) == {"ru"}
    assert not (older / "eval").exists()


def test_eval_without_any_run_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert mlilt_main(["eval", "--langs", "ru,tr"]) == 2
    err = capsys.readouterr().err
    assert "no trained run under ./runs" in err and "python recipes/align_english.py" in err
