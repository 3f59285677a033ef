"""lilt_lora: PEFT's LoRA in both towers, counted by formula, identity at step 0, clear refusals."""

import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import torch
from torch import nn

import mlilt
from mlilt import build_model, cli, strategies

REPO = Path(__file__).resolve().parents[1]
BERT_BASE = str(REPO / "recipes/configs/architectures/bert-base-uncased.json")
RANK = 4

# The layers LoRA adapts (mlilt.towers docstring): every Linear of a BERT layer and of a ViT block.
BERT_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")
VIT_LINEARS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def lora_formula(frozen, rank: int) -> int:
    """r * (in + out) for every targeted Linear (A: in -> r, B: r -> out, no biases), from the plain model."""
    layers = [layer.get_submodule(n) for layer in frozen.text.model.encoder.layer for n in BERT_LINEARS]
    layers += [block.get_submodule(n) for block in frozen.vision.model.blocks for n in VIT_LINEARS]
    assert all(isinstance(m, nn.Linear) for m in layers)
    return sum(rank * (m.in_features + m.out_features) for m in layers)


def test_lilt_lora_counts_lora_formula_plus_norms_plus_head(tiny_model_config):
    frozen = build_model(tiny_model_config("frozen"))
    lora = build_model(tiny_model_config("lilt_lora", lora_rank=RANK))
    norms = sum(p.numel() for tower in (frozen.text, frozen.vision) for p in tower.norm_parameters())
    head = sum(p.numel() for p in frozen.head_parameters())
    c = mlilt.count(lora)
    assert c["trainable"] == lora_formula(frozen, RANK) + norms + head
    assert c["total"] == mlilt.count(frozen)["total"] + lora_formula(frozen, RANK)
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trainable) and not any("base_layer" in n for n in trainable)


def test_lilt_lora_computes_the_frozen_model_at_step_0_and_trains(tiny_model_config):
    frozen = build_model(tiny_model_config("frozen")).eval()
    lora = build_model(tiny_model_config("lilt_lora", lora_rank=RANK)).eval()
    lora.load_state_dict({k: v for k, v in frozen.state_dict().items() if "projection" in k or k == "temperature"},
                         strict=False)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = lora.text.tokenize(["a red cat", "the big dog"])
    with torch.no_grad():
        torch.testing.assert_close(lora.encode_image(pixels), frozen.encode_image(pixels), rtol=0, atol=0)
        torch.testing.assert_close(lora.encode_text(**tokens), frozen.encode_text(**tokens), rtol=0, atol=0)
    logits, _ = lora.train()(pixels, tokens["input_ids"], tokens["attention_mask"])
    nn.functional.cross_entropy(logits, torch.arange(2)).backward()
    for tower in (lora.text, lora.vision):
        b = [p for n, p in tower.named_parameters() if ".lora_B." in n]
        assert b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in b)


def test_lora_on_a_cnn_takes_its_dense_convs_only():
    tower = mlilt.VisionTower.from_config(mlilt.VisionTowerConfig("tf_efficientnet_lite0", pretrained=False))
    targets = tower.lora_targets()
    modules = dict(tower.model.named_modules())
    assert "conv_head" in targets and "blocks.1.0.conv_pw" in targets and "blocks.1.0.conv_pwl" in targets
    assert not any(modules[t].groups > 1 for t in targets)   # depthwise convolutions are left alone
    assert "conv_stem" not in targets                        # timm's Conv2dSame pads in its own forward
    before = sum(p.numel() for p in tower.parameters())
    tower.insert_lora(RANK)
    added = sum(RANK * (m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels)
                for t in targets for m in [tower.model.get_submodule(t).base_layer])
    assert sum(p.numel() for p in tower.added_parameters()) == added
    assert sum(p.numel() for p in tower.parameters()) == before + added


def test_lilt_lora_rank_matches_lilt_lwa_in_the_paper_setting():
    out = StringIO()
    with redirect_stdout(out):
        assert cli.main(["params", "--text", BERT_BASE, "--vision", "deit_base_patch16_224", "--img-size", "256",
                         "--no-pretrained", "--json", "--strategy", "lilt_ln", "--strategy", "lilt_lwa",
                         "--strategy", "lilt_lora"]) == 0
    rows = {r["strategy"]: r for r in json.loads(out.getvalue())}
    # 12 BERT-base layers (4 x 768->768, 768->3072, 3072->768) and 12 DeiT-B blocks (768->2304, 768->768, fc1, fc2)
    per_rank = 12 * (4 * 1536 + 2 * 3840) + 12 * (3072 + 1536 + 2 * 3840)
    assert rows["lilt_lora"]["trainable"] == rows["lilt_ln"]["trainable"] + strategies.LORA_RANK * per_rank
    assert rows["lilt_lora"]["percent_trainable"] == pytest.approx(rows["lilt_lwa"]["percent_trainable"], abs=0.1)


def test_apply_refuses_unsupported_lora_combinations(tiny_model_config):
    with pytest.raises(ValueError, match="adapter='lora' with unlock='all' is refused"):
        mlilt.resolve("lilt_lora", text_unlock="all")
    with pytest.raises(ValueError, match="lora_rank must be a positive integer, got 0"):
        build_model(tiny_model_config("lilt_lora", lora_rank=0))
    model = build_model(tiny_model_config("frozen"))
    model.vision.adapters_supported = ("none", "deep")  # a tower that cannot take LoRA
    with pytest.raises(ValueError, match=r"vision tower .* cannot take adapter='lora'; it can take adapter=none\|deep"):
        strategies.apply(model, strategies.PRESETS["lilt_lora"])
    assert not any("lora" in n for n, _ in model.named_parameters()), "a refused strategy must not half-apply"
