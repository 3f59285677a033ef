"""The dual-encoder core on tiny random towers: zero-init adapters, locking, trained-state round trip."""

import copy

import pytest
import torch
import torch.nn.functional as F

import mlilt
from mlilt import PRESETS, DualEncoder, build_model
from mlilt.towers import VisionTowerConfig

TEXTS = ["a red cat", "the big dog runs", "a photo of a blue car", "green tree house"]


def batch(model, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(n, 3, 32, 32, generator=g)
    tokens = model.text.tokenize(TEXTS[:n])
    return pixels, tokens["input_ids"], tokens["attention_mask"]


def contrastive_loss(model, pixels, ids, mask):
    logits_i, logits_t = model(pixels, ids, mask)
    labels = torch.arange(len(pixels))
    return (F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels)) / 2


def train_steps(model, steps=3):
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    if not params:
        return
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)  # no decay: any change comes from gradients
    for step in range(steps):
        opt.zero_grad()
        contrastive_loss(model, *batch(model, seed=step)).backward()
        opt.step()


@pytest.mark.parametrize("strategy", ["lilt_lwa", "lilt_lwa_no_ln", "lilt_lwa_bitfit", "lit_lilt_lwa"])
def test_zero_init_layerwise_adapters_compute_the_frozen_model(tiny_model_config, strategy):
    frozen = build_model(tiny_model_config("frozen")).eval()
    adapted = build_model(tiny_model_config(strategy)).eval()
    adapted.load_state_dict(
        {k: v for k, v in frozen.state_dict().items() if "projection" in k or k == "temperature"}, strict=False)
    assert sum(p.numel() for p in adapted.parameters()) > sum(p.numel() for p in frozen.parameters())
    pixels, ids, mask = batch(frozen)
    with torch.no_grad():
        torch.testing.assert_close(adapted.encode_image(pixels), frozen.encode_image(pixels), rtol=0, atol=0)
        torch.testing.assert_close(adapted.encode_text(ids, mask), frozen.encode_text(ids, mask), rtol=0, atol=0)


def test_reference_init_adapters_change_the_output(tiny_model_config):
    frozen = build_model(tiny_model_config("frozen")).eval()
    adapted = build_model(tiny_model_config("lilt_lwa", adapter_zero_init=False)).eval()
    pixels, ids, mask = batch(frozen)
    with torch.no_grad():
        assert not torch.allclose(adapted.vision(pixels), frozen.vision(pixels))


@pytest.mark.parametrize("strategy", list(PRESETS))
def test_locked_parameters_stay_bit_identical_and_unlocked_ones_change(tiny_model_config, strategy):
    model = build_model(tiny_model_config(strategy))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[name]), f"{strategy}: unlocked {name} did not change"
        else:
            assert torch.equal(p, before[name]), f"{strategy}: locked {name} changed"


def test_strategy_plan_decides_what_trains(tiny_model_config):
    names = lambda m: {n for n, p in m.named_parameters() if p.requires_grad}  # noqa: E731
    lwa = names(build_model(tiny_model_config("lilt_lwa")))
    assert any(".adapter.down." in n for n in lwa) and any("LayerNorm" in n for n in lwa)
    assert not any("attention.self.query" in n or "attn.qkv" in n for n in lwa)
    bitfit = names(build_model(tiny_model_config("lilt_bitfit")))
    assert bitfit - {"temperature"} and all(n.endswith("bias") or "projection" in n or n == "temperature"
                                            or "norm" in n.lower() for n in bitfit)
    assert "temperature" not in names(build_model(tiny_model_config("ln_only")))
    lit = build_model(tiny_model_config("lit"))
    assert all(p.requires_grad for p in lit.text.parameters())
    assert not any(p.requires_grad for p in lit.vision.parameters())


def test_deep_adapter_grows_each_stack_by_one_fresh_layer(tiny_model_config):
    base = build_model(tiny_model_config("frozen"))
    deep = build_model(tiny_model_config("lilt_da"))
    assert len(deep.text.layers()) == len(base.text.layers()) + 1
    assert len(deep.vision.layers()) == len(base.vision.layers()) + 1
    assert type(deep.text.layers()[-1]) is type(base.text.layers()[-1])
    new, last = deep.vision.layers()[-1], deep.vision.layers()[-2]
    assert not torch.equal(new.attn.qkv.weight, last.attn.qkv.weight)  # freshly initialised, not a copy
    new_t, last_t = deep.text.layers()[-1], deep.text.layers()[-2]
    assert not torch.equal(new_t.intermediate.dense.weight, last_t.intermediate.dense.weight)
    assert all(p.requires_grad for p in deep.vision.layers()[-1].parameters())


def test_per_tower_override_of_a_preset():
    s = mlilt.resolve("lilt_lwa", vision_adapter="deep", text_unlock="bitfit")
    assert (s.text.unlock, s.text.adapter, s.vision.unlock, s.vision.adapter) == \
        ("bitfit", "layerwise", "layernorm", "deep")
    with pytest.raises(ValueError, match="unlock must be one of"):
        mlilt.resolve("lilt_lwa", text_unlock="everything")


@pytest.mark.parametrize("strategy", ["lilt_lwa", "lilt_da", "lilt_bitfit", "lit", "lilt_lora"])
def test_trained_state_round_trips_through_safetensors(tiny_model_config, tmp_path, strategy):
    model = build_model(tiny_model_config(strategy))
    train_steps(model, steps=2)
    model.save_trained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model_config.json", "trained.safetensors"}

    from safetensors.torch import load_file

    saved = load_file(tmp_path / "trained.safetensors")
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}
    reloaded = DualEncoder.load_trained(tmp_path).eval()
    model.eval()
    pixels, ids, mask = batch(model)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.encode_image(pixels), model.encode_image(pixels), rtol=0, atol=0)
        torch.testing.assert_close(reloaded.encode_text(ids, mask), model.encode_text(ids, mask), rtol=0, atol=0)
    assert reloaded.strategy == model.strategy


def test_trained_state_of_another_strategy_is_refused(tiny_model_config, tmp_path):
    build_model(tiny_model_config("lilt_ln")).save_trained(tmp_path)
    other = build_model(tiny_model_config("lilt_lwa"))
    from safetensors.torch import load_file

    with pytest.raises(ValueError, match="does not fit this model's strategy lilt_lwa"):
        other.load_trained_state_dict(load_file(tmp_path / "trained.safetensors"), source="x")


def test_cnn_tower_takes_a_deep_adapter_and_norm_unlock(tiny_model_config):
    cfg = tiny_model_config("lilt_lwa", vision_adapter="deep")
    cfg.vision = VisionTowerConfig("tf_efficientnet_lite0", pretrained=False)
    model = build_model(cfg)
    assert len(model.vision.blocks) == 1
    bn = model.vision.model.bn2
    running = bn.running_mean.clone()
    before = copy.deepcopy(bn.weight.detach())
    train_steps(model, steps=2)
    assert torch.equal(bn.running_mean, running), "BatchNorm statistics must stay frozen"
    assert not torch.equal(bn.weight, before)
    assert model.encode_image(torch.randn(2, 3, 32, 32)).shape == (2, 16)


def test_vision_position_embeddings_resize_from_a_weights_file(tiny_towers):
    from conftest import TINY_VIT

    _, weights = tiny_towers
    tower = mlilt.VisionTower.from_config(VisionTowerConfig(
        TINY_VIT["name"], weights=str(weights), img_size=48, model_kwargs=dict(TINY_VIT["model_kwargs"])))
    assert tower.model.pos_embed.shape[1] == (48 // 8) ** 2 + 1
    assert tower(torch.randn(1, 3, 48, 48)).shape == (1, 32)


def test_text_tower_pooling_and_prefix(tiny_towers):
    text_dir, _ = tiny_towers
    tower = mlilt.TextTower.from_config(mlilt.TextTowerConfig(str(text_dir), pooling="mean", text_prefix="a "))
    tokens = tower.tokenize(["cat"])
    assert tower.tokenizer.convert_ids_to_tokens(tokens["input_ids"][0].tolist()) == ["[CLS]", "a", "cat", "[SEP]"]
    hidden = tower.model(**tokens).last_hidden_state
    torch.testing.assert_close(tower(**tokens), hidden.mean(1))
    assert tower.model.pooler is None


def test_temperature_is_clamped(tiny_model_config):
    model = build_model(tiny_model_config("projection_only"))
    with torch.no_grad():
        model.temperature.fill_(5.0)
    assert model.logit_scale().item() == pytest.approx(1 / 0.5)
    assert model.temperature.item() == pytest.approx(0.5)


def test_hub_names_go_to_the_hub_loaders(monkeypatch):
    """Real users name hub models; offline here, the loaders must be reached with those names."""
    import timm
    import transformers

    calls = []

    def fake_hub(name, *args, **kwargs):
        calls.append(name)
        raise OSError(f"offline: {name}")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fake_hub)
    with pytest.raises(OSError, match="bert-base-multilingual-cased"):
        mlilt.TextTower.from_config(mlilt.TextTowerConfig("bert-base-multilingual-cased"))
    assert calls == ["bert-base-multilingual-cased"]

    created = []
    real_create = timm.create_model

    def spy(name, pretrained=False, **kwargs):
        created.append((name, pretrained, kwargs.get("img_size")))
        return real_create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    with torch.device("meta"):
        tower = mlilt.VisionTower.from_config(VisionTowerConfig("deit_base_patch16_224", img_size=256))
    assert created == [("deit_base_patch16_224", True, 256)]
    assert tower.model.pos_embed.shape[1] == 16 * 16 + 1


def test_load_finds_the_model_in_a_run_directory(tiny_model_config, tmp_path):
    model = build_model(tiny_model_config("lilt_ln"))
    model.save_trained(tmp_path / "run" / "checkpoints" / "step_00000002")
    train_steps(model, steps=1)
    model.save_trained(tmp_path / "run" / "checkpoints" / "step_00000010")
    latest = mlilt.load(tmp_path / "run")
    torch.testing.assert_close(latest.text_projection.weight, model.text_projection.weight, rtol=0, atol=0)
    model.save_trained(tmp_path / "run" / "model")
    assert mlilt.model.resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "model"
    with pytest.raises(FileNotFoundError, match="neither a saved model"):
        mlilt.load(tmp_path)


@pytest.mark.parametrize("strategy", ["lilt_lwa", "lilt_lora"])
def test_text_layers_are_found_again_after_adapters_or_lora(tiny_model_config, strategy):
    base = build_model(tiny_model_config("frozen"))
    adapted = build_model(tiny_model_config(strategy))
    assert len(adapted.text.layers()) == len(base.text.layers())
    assert [type(m) for m in adapted.text.layers()] == [type(m) for m in base.text.layers()]
