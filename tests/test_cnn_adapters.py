"""Layerwise adapters in CNN towers (timm EfficientNet, ResNet, MobileNet built with pretrained=False)."""

import copy

import pytest
import torch
from torch import nn

from mlilt import build_model
from mlilt.adapters import MIN_CONV_BOTTLENECK, ConvAdapter
from mlilt.towers import VisionTower, VisionTowerConfig

CNNS = ["tf_efficientnet_lite0", "resnet18", "resnet14t", "mobilenetv3_small_050"]


# timm zero-initialises the last BatchNorm scale of each ResNet block (zero_init_last), which would
# zero every gradient reaching an adapter before it; pretrained weights have no such zeros.
RANDOM_INIT = {"resnet18": {"zero_init_last": False}, "resnet14t": {"zero_init_last": False}}


def cnn_config(name: str) -> VisionTowerConfig:
    return VisionTowerConfig(name, pretrained=False, model_kwargs=dict(RANDOM_INIT.get(name, {})))


def cnn_tower(name: str) -> VisionTower:
    torch.manual_seed(0)
    return VisionTower.from_config(cnn_config(name))


def wrapped(module: nn.Module) -> bool:
    """An adapter_before wrapper: Sequential(adapter=ConvAdapter, base=BatchNorm)."""
    return (isinstance(module, nn.Sequential) and isinstance(getattr(module, "adapter", None), ConvAdapter)
            and isinstance(getattr(module, "base", None), nn.modules.batchnorm._BatchNorm))


def bn_width(module: nn.Module) -> int:
    return module.base.num_features if wrapped(module) else module.num_features


@pytest.mark.parametrize("name", CNNS)
def test_zero_init_cnn_adapters_compute_the_frozen_tower_exactly(name):
    frozen = cnn_tower(name).eval()
    adapted = copy.deepcopy(frozen)
    adapted.insert_layerwise_adapters(reduction=4, zero_init=True)
    assert adapted.added_modules and all(isinstance(a, ConvAdapter) for a in adapted.added_modules)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (adapted(pixels) - frozen(pixels)).abs().max().item() == 0.0


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "resnet18"])
def test_cnn_adapters_receive_gradients_and_train(tiny_model_config, name):
    cfg = tiny_model_config("lilt_lwa")
    cfg.vision = cnn_config(name)
    model = build_model(cfg)
    adapters = model.vision.added_modules
    assert all(p.requires_grad for a in adapters for p in a.parameters())
    model.train()
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = model.text.tokenize(["a red cat", "the big dog", "a blue car", "green tree"])
    logits, _ = model(pixels, tokens["input_ids"], tokens["attention_mask"])
    nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    # Zero-initialised up-projections: the up weights get the first gradient (down's follows once up moves).
    for adapter in adapters:
        assert adapter.up.weight.grad is not None and adapter.up.weight.grad.abs().sum() > 0, adapter
    assert all(p.grad is None for p in model.vision.model.parameters() if not p.requires_grad)


def test_cnn_adapters_in_bf16_autocast_compute_what_they_did_before(monkeypatch):
    """A CNN adapter's input is a convolution's output, bf16 under autocast already: issue 21's cast is a no-op there."""
    torch.manual_seed(0)
    tower = cnn_tower("tf_efficientnet_lite0").eval()
    tower.insert_layerwise_adapters(reduction=4, zero_init=False)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def embed_and_gradients():
        tower.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tower(pixels)
        out.float().square().sum().backward()
        return out, [a.down.weight.grad for a in tower.added_modules]

    out, grads = embed_and_gradients()
    monkeypatch.setattr(ConvAdapter, "forward", lambda self, x: x + self.up(self.act(self.down(x))))
    old_out, old_grads = embed_and_gradients()
    assert out.dtype == torch.bfloat16 and torch.equal(out, old_out)
    assert all(g is not None and torch.equal(g, old) for g, old in zip(grads, old_grads))


def test_efficientnet_adapters_sit_before_each_blocks_closing_norm_and_the_head_norm():
    tower = cnn_tower("tf_efficientnet_lite0")
    tower.insert_layerwise_adapters(reduction=4)
    model, blocks = tower.model, [b for stage in tower.model.blocks for b in stage]
    closing = {"DepthwiseSeparableConv": "bn2", "InvertedResidual": "bn3"}
    for block in blocks:
        norms = [n for n, c in block.named_children() if n.startswith("bn")]
        last = closing[type(block).__name__]
        assert wrapped(getattr(block, last)), f"{type(block).__name__}.{last} takes no adapter"
        assert not any(wrapped(getattr(block, n)) for n in norms if n != last), "an inner norm took an adapter"
    assert wrapped(model.bn2) and model.bn2.adapter.down.in_channels == 1280  # conv_head -> adapter -> bn2
    assert not wrapped(model.bn1)                                               # the stem takes none
    assert len(tower.added_modules) == len(blocks) + 1

    # The adapter reads exactly what the projection conv wrote (BERT's sublayer output before its LN).
    seen = {}
    block = blocks[3]
    block.conv_pwl.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o))
    block.bn3.adapter.register_forward_hook(lambda m, i, o: seen.__setitem__("adapter", i[0]))
    with torch.no_grad():
        tower.eval()(torch.randn(1, 3, 32, 32))
    assert seen["adapter"] is seen["conv"]


@pytest.mark.parametrize("name, block_type, last", [("resnet18", "BasicBlock", "bn2"),
                                                     ("resnet14t", "Bottleneck", "bn3")])
def test_resnet_adapters_sit_before_each_blocks_last_norm(name, block_type, last):
    tower = cnn_tower(name)
    tower.insert_layerwise_adapters(reduction=4)
    model = tower.model
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert {type(b).__name__ for b in blocks} == {block_type}
    for block in blocks:
        assert wrapped(getattr(block, last))
        assert not any(wrapped(m) for n, m in block.named_children() if n.startswith("bn") and n != last)
        if block.downsample is not None:  # the shortcut's norm is not a block output
            assert not any(wrapped(m) for m in block.downsample.modules())
    assert not any(wrapped(m) for m in (model.bn1, *getattr(model.conv1, "children", lambda: [])()))
    assert len(tower.added_modules) == len(blocks)  # ResNet's head has no norm


def test_conv_adapter_bottleneck_keeps_a_floor_for_narrow_blocks():
    assert ConvAdapter(1280, reduction=4).down.out_channels == 320
    assert ConvAdapter(40, reduction=4).down.out_channels == 10
    assert ConvAdapter(24, reduction=4).down.out_channels == MIN_CONV_BOTTLENECK
    assert ConvAdapter(16, reduction=4).down.out_channels == MIN_CONV_BOTTLENECK
    assert ConvAdapter(4, reduction=4).down.out_channels == 4  # never wider than the input
    tower = cnn_tower("tf_efficientnet_lite0")
    tower.insert_layerwise_adapters(reduction=4)
    widths = sorted({(a.down.in_channels, a.down.out_channels) for a in tower.added_modules})
    assert widths[0] == (16, 8) and widths[-1] == (1280, 320)
    assert all(bn_width(m) in {a.down.in_channels for a in tower.added_modules}
               for m in tower.model.modules() if wrapped(m))
