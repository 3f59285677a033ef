"""Shared fixtures: tiny random towers saved to disk, a COCO-shaped folder and a datasets table, offline only."""

import os

# Nothing in the test suite may reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers_data import COLOURS, image_bytes, save_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    """The real data tests may read: $MLILT_SHARED, else ``shared/`` beside the checkout or (a git
    worktree under ``wt/``) beside its parent."""
    if os.environ.get("MLILT_SHARED"):
        return Path(os.environ["MLILT_SHARED"])
    candidates = [REPO.parent / "shared", REPO.parent.parent / "shared"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = _shared_dir()

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz") + [
    "a", "cat", "dog", "red", "blue", "car", "photo", "of", "the", "on", "sits", "runs", "big", "small",
    "##s", "##ing", "green", "tree", "house", "bird"]


def save_tiny_text_tower(directory: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random BERT with a word-piece tokenizer, saved as a Hugging Face model directory."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    vocab = list(dict.fromkeys(TINY_VOCAB))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


TINY_VIT = dict(name="vit_tiny_patch16_224", img_size=32,
                model_kwargs=dict(patch_size=8, embed_dim=32, depth=2, num_heads=2))


def save_tiny_vision_weights(path: Path, *, name: str = TINY_VIT["name"], seed: int = 0, **kwargs) -> Path:
    """Random timm weights written to a safetensors file, for the 'local weights file' path."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_towers(tmp_path_factory):
    """(text_dir, vision_weights) of a tiny BERT and a tiny ViT saved on disk."""
    root = tmp_path_factory.mktemp("towers")
    text_dir = save_tiny_text_tower(root / "text")
    weights = save_tiny_vision_weights(root / "vit.safetensors", img_size=TINY_VIT["img_size"],
                                       **TINY_VIT["model_kwargs"])
    return text_dir, weights


@pytest.fixture
def tiny_model_config(tiny_towers):
    """A factory of ModelConfig on the tiny towers for any strategy."""

    def make(strategy="lilt_lwa", **overrides):
        return tiny_config(tiny_towers, strategy, **overrides)

    return make


def tiny_config(tiny_towers, strategy="lilt_lwa", **overrides):
    """ModelConfig on the tiny towers (for fixtures of a wider scope than tiny_model_config's)."""
    from mlilt import ModelConfig, TextTowerConfig, VisionTowerConfig

    text_dir, weights = tiny_towers
    return ModelConfig(text=TextTowerConfig(str(text_dir), max_length=16),
                       vision=VisionTowerConfig(TINY_VIT["name"], weights=str(weights), img_size=TINY_VIT["img_size"],
                                                model_kwargs=dict(TINY_VIT["model_kwargs"])),
                       embed_dim=16, strategy=strategy, **overrides)


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch):
    """The suite's numbers assume fp32 where ``precision="auto"`` decides: on every machine, the CPU
    is taken to lack native bf16 (as AVX2 CPUs do). ``cpu_bf16`` runs a test as either kind of CPU."""
    _force_native_bf16_on_cpu(monkeypatch, False)


@pytest.fixture(params=[False, True], ids=["cpu-emulated-bf16", "cpu-native-bf16"])
def cpu_bf16(request, monkeypatch):
    """Run the test once as a CPU without native bf16 (AVX2) and once as one with it (AVX512-BF16/AMX)."""
    _force_native_bf16_on_cpu(monkeypatch, request.param)
    return request.param


def _force_native_bf16_on_cpu(monkeypatch, native: bool) -> None:
    from mlilt.evaluation import harness

    decide = harness.native_bf16
    monkeypatch.setattr(harness, "native_bf16", lambda device: native if device.type == "cpu" else decide(device))


def mlilt_eval(*argv) -> int:
    """``mlilt eval ARGV`` in-process, letting its errors raise (the CLI's main would print them)."""
    import argparse

    from mlilt.evaluation.cli import add_eval_parser

    parser = argparse.ArgumentParser(prog="mlilt")
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *map(str, argv)])
    return args.func(args)


# An emoji-xtd-shaped evaluation set in $MLILT_HOME: 12 distinct images, line-aligned en and ru captions
# made of the tiny vocabulary's words (distinct texts, so no tied scores).
CAPTIONS = {"en": "the {colour} {noun}", "ru": "лицо {noun} {colour}"}
_COLOURS, _NOUNS = ["red", "blue", "green"], ["cat", "dog", "car", "bird"]


def caption(template: str, i: int) -> str:
    return template.format(colour=_COLOURS[i % 3], noun=_NOUNS[i // 3])


@pytest.fixture
def emoji_like(tmp_path, monkeypatch):
    """(set root, image names) of the emoji-xtd-shaped set, with MLILT_HOME pointing at it."""
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    return write_emoji_like(tmp_path / "home")


def write_emoji_like(home: Path) -> tuple[Path, list[str]]:
    """Write the emoji-xtd-shaped set where emoji-XTD v1 lives, ``home/data/emoji-xtd``."""
    from PIL import Image

    root = home / "data" / "emoji-xtd"
    (root / "images").mkdir(parents=True)
    names = [f"{0x1f600 + i:x}.png" for i in range(12)]
    for i, name in enumerate(names):
        Image.effect_noise((16, 16), 15 + 8 * i).convert("RGB").rotate(7 * i).save(root / "images" / name)
    (root / "test_image_names.txt").write_text("\n".join(names) + "\n")
    for lang, template in CAPTIONS.items():
        (root / f"test_1kcaptions_{lang}.txt").write_text("\n".join(caption(template, i) for i in range(12)) + "\n")
    return root, names


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty $MLILT_HOME of this test's own."""
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# A COCO-shaped folder and a datasets table: what the data tests load in every layout.
@pytest.fixture
def coco(tmp_path):
    """A COCO-shaped folder: train2014/ and val2014/ images, Karpathy and ALBEF manifests elsewhere."""
    root = tmp_path / "coco"
    names = {61844: "train2014/COCO_train2014_000000061844.jpg", 57870: "train2014/COCO_train2014_000000057870.jpg",
             391895: "val2014/COCO_val2014_000000391895.jpg", 522418: "val2014/COCO_val2014_000000522418.jpg"}
    for i, rel in enumerate(names.values()):
        save_image(root / rel, COLOURS[i])
    splits = {61844: "train", 57870: "restval", 391895: "test", 522418: "val"}
    karpathy = {"dataset": "coco", "images": [
        {"filepath": names[c].split("/")[0], "filename": names[c].split("/")[1], "split": splits[c], "cocoid": c,
         "imgid": i,
         "sentences": [{"raw": f"caption {j} of {c} ", "tokens": []} for j in range(2 if c != 57870 else 1)]}
        for i, c in enumerate(names)]}
    manifests = tmp_path / "annotations"
    manifests.mkdir()
    (manifests / "dataset_coco.json").write_text(json.dumps(karpathy))
    albef = [{"image": names[61844], "caption": "a cat on a mat", "image_id": "coco_61844"},
             {"image": names[57870], "caption": "a dog"},
             {"image": names[391895], "caption": ["one", "two", "three"]}]
    (manifests / "coco_train.json").write_text(json.dumps(albef))
    return root, manifests


@pytest.fixture
def hf_table():
    """A datasets table with embedded images, a list-of-captions column and no image_id."""
    import datasets

    return datasets.Dataset.from_dict(
        {"image": [{"bytes": image_bytes(c, "PNG"), "path": None} for c in COLOURS[:2]],
         "caption": [["red one", "red two"], ["green"]], "other": [1, 2]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.List(datasets.Value("string")),
                                    "other": datasets.Value("int64")}))
