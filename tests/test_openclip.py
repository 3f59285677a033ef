"""The open_clip interface: CLIP_benchmark's own retrieval metric agrees with mlilt eval."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from PIL import Image

import mlilt
from conftest import mlilt_eval, tiny_config, write_emoji_like
from mlilt.model import build_model

try:  # the peer tool itself, not a copy: installed by `make install` (without its heavy dependencies)
    from clip_benchmark.metrics import zeroshot_retrieval
except ImportError as err:
    raise ImportError("tests/test_openclip.py needs clip-benchmark: "
                      "pip install --no-deps clip-benchmark==1.6.2 (what `make install` runs)") from err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_towers):
    """(home, run): a tiny lilt_lwa model trained a few full-batch InfoNCE steps on the set's English pairs."""
    from mlilt.evaluation.harness import image_transform
    from mlilt.train.loss import contrastive_loss

    home = tmp_path_factory.mktemp("openclip") / "home"
    root, names = write_emoji_like(home)
    torch.manual_seed(5)
    model = build_model(tiny_config(tiny_towers, "lilt_lwa"))
    pixels = torch.stack([image_transform(model)(Image.open(root / "images" / n).convert("RGB")) for n in names])
    tokens = model.text.tokenize((root / "test_1kcaptions_en.txt").read_text().splitlines())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(8):
        loss = contrastive_loss(model.encode_image(pixels), model.encode_text(**tokens), model.logit_scale())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    run = home.parent / "run"
    model.save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 5, "strategy": "lilt_lwa"}))
    return home, run


@pytest.fixture
def run(trained, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(trained[0]))
    return trained[1]


class Pairs(torch.utils.data.Dataset):
    """CLIP_benchmark's retrieval data shape: (image tensor, [captions of the image])."""

    def __init__(self, root, lang, transform):
        names = (root / "test_image_names.txt").read_text().split()
        captions = (root / f"test_1kcaptions_{lang}.txt").read_text(encoding="utf-8").splitlines()
        self.items = [(root / "images" / n, [c]) for n, c in zip(names, captions)]
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, texts = self.items[i]
        return self.transform(Image.open(path).convert("RGB")), texts


def collate(batch):  # clip_benchmark.datasets.builder.image_captions_collate_fn
    return torch.stack([image for image, _ in batch]), [texts for _, texts in batch]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_clip_benchmark_recalls_equal_mlilt_eval(run, lang):
    root = run.parent / "home" / "data" / "emoji-xtd"
    assert mlilt_eval(run, "--eval-set", "emoji-xtd-v1", "--langs", lang, "--precision", "fp32", "--workers", "0",
                      "--quiet", "--no-cache") == 0
    ours = json.loads((run / "eval" / "emoji-xtd-v1_test.json").read_text())["results"][lang]

    model, preprocess_train, preprocess_val = mlilt.create_model_and_transforms(run)
    tokenizer = mlilt.get_tokenizer(run)
    loader = torch.utils.data.DataLoader(Pairs(root, lang, preprocess_val), batch_size=5, collate_fn=collate)
    # No tied scores, where the two tie rules would differ.
    with torch.no_grad():
        images = torch.cat([model.encode_image(x) for x, _ in loader])
        texts = model.encode_text(tokenizer([t[0] for _, ts in loader for t in ts]))
    scores = (texts @ images.T).flatten()
    assert len(torch.unique(scores)) == len(scores)

    theirs = zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    for k in (1, 5, 10):
        assert 100 * theirs[f"image_retrieval_recall@{k}"] == pytest.approx(ours[f"IR@{k}"], abs=1e-4)
        assert 100 * theirs[f"text_retrieval_recall@{k}"] == pytest.approx(ours[f"TR@{k}"], abs=1e-4)
    assert not all(ours[f"IR@{k}"] in (0.0, 100.0) for k in (1, 5, 10))  # a comparison with something in it


def test_open_clip_calling_conventions(run):
    model, preprocess_train, preprocess_val = mlilt.create_model_and_transforms(run)
    tokenizer = mlilt.get_tokenizer(run)
    tokens = tokenizer(["a red car", "the dog"]).to("cpu")
    text = model.encode_text(tokens)
    pixels = preprocess_val(Image.new("RGB", (40, 30), (200, 10, 10)))[None]
    image = model.encode_image(pixels)
    assert text.shape == (2, 16) and image.shape == (1, 16)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2))
    assert float(model.logit_scale.exp()) == pytest.approx(1 / mlilt.load(run).temperature.item(), rel=1e-5)
    assert preprocess_train(Image.new("RGB", (40, 30))).shape == (3, 32, 32)
    image_features, text_features, scale = model(pixels, tokens)
    assert torch.equal(image_features, image) and torch.equal(text_features, text)
    assert torch.equal(scale, model.logit_scale.exp())
