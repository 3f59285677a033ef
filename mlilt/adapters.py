"""Modules LilT adds to a locked tower (Khan & Fu, ICLR 2023, §3.2): bottleneck adapters, and LoRA.

The adapter is ``x + up(GELU(down(x)))`` with ``down: d -> d/r`` and ``up: d/r -> d``: linear layers
over token features (``Adapter``), 1x1 convolutions over CNN feature maps (``ConvAdapter``). Where
it goes depends on the tower (post-LN BERT layers, pre-LN ViT blocks, CNN blocks); ``mlilt.towers``
knows the places, this module only builds the modules. LoRA (Hu et al., 2022) is PEFT's, injected
into the layers a tower names (``inject_lora``).

    >>> adapter = Adapter(768, reduction=4)          # 295,872 parameters, identity at init
    >>> sum(p.numel() for p in adapter.parameters())
    295872
    >>> ConvAdapter(16, reduction=4).down            # narrow CNN blocks keep MIN_CONV_BOTTLENECK channels
    Conv2d(16, 8, kernel_size=(1, 1), stride=(1, 1))
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


# The narrowest CNN adapter bottleneck: EfficientNet/MobileNet's first blocks are 16-24 channels
# wide, where d/4 would leave 4-6 channels; 8 keeps every adapter a true bottleneck (8 < 16) at a
# cost of a few hundred parameters per block.
MIN_CONV_BOTTLENECK = 8


class Adapter(nn.Module):
    """Residual bottleneck adapter ``x + up(GELU(down(x)))`` over features (B, ..., d) (Houlsby et al., 2019)."""

    def __init__(self, dim: int, reduction: int = 4, zero_init: bool = True):
        super().__init__()
        hidden = self.bottleneck(dim, reduction)
        self.down = self.projection(dim, hidden)
        self.act = nn.GELU()
        self.up = self.projection(hidden, dim)
        if zero_init:
            # A zero up-projection makes the adapted model compute exactly what the frozen one does at
            # step 0; the reference code keeps nn.Linear's default init (zero_init=False).
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = in_compute_dtype(x)
        return x + self.up(self.act(self.down(x)))

    @staticmethod
    def bottleneck(dim: int, reduction: int) -> int:
        """``d / r``, as in the paper."""
        if dim % reduction:
            raise ValueError(f"adapter: width {dim} is not divisible by reduction factor {reduction}")
        return dim // reduction

    @staticmethod
    def projection(n_in: int, n_out: int) -> nn.Module:
        return nn.Linear(n_in, n_out)


class ConvAdapter(Adapter):
    """The bottleneck adapter over CNN feature maps (B, d, H, W): 1x1 convolutions, a per-pixel ``Adapter``."""

    @staticmethod
    def bottleneck(dim: int, reduction: int) -> int:
        """``d / r`` (rounded up), at least ``MIN_CONV_BOTTLENECK`` channels (never more than ``d``)."""
        return max(-(-dim // reduction), min(dim, MIN_CONV_BOTTLENECK))

    @staticmethod
    def projection(n_in: int, n_out: int) -> nn.Module:
        return nn.Conv2d(n_in, n_out, kernel_size=1)


def in_compute_dtype(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the autocast dtype while CPU autocast is on; otherwise unchanged (fp32 stays bit-identical)."""
    # A pre-LN ViT's residual stream is fp32 under autocast (its fp32 position embedding promotes it): an
    # adapter on it cast its input down for its matmuls and its bf16 branch up for the fp32 sum, both again
    # for the gradients, and handed the norm fp32 for the next matmul to cast down once more. CPU autocast
    # runs LayerNorm and BatchNorm in their input's dtype, so this one cast serves the adapter, the norm and
    # the matmul after it. CUDA autocast runs LayerNorm in fp32 and would cast a bf16 output straight back.
    if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu") or not x.is_floating_point():
        return x
    return x.to(torch.get_autocast_dtype("cpu"))


def adapter_before(module: nn.Module, adapter: Adapter) -> nn.Sequential:
    """``module`` that first runs ``adapter`` on its input (pre-LN blocks: adapter, then norm)."""
    return nn.Sequential(OrderedDict(adapter=adapter, base=module))


def adapter_after(module: nn.Module, adapter: Adapter) -> nn.Sequential:
    """``module`` whose output goes through ``adapter`` (post-LN layers: dropout, then adapter)."""
    return nn.Sequential(OrderedDict(base=module, adapter=adapter))


def inject_lora(module: nn.Module, targets: list[str], rank: int) -> list[nn.Module]:
    """PEFT's LoRA (Hu et al., 2022) on the named Linear/Conv2d layers of ``module``; returns the added modules.

    ``lora_alpha = rank`` (scale 1), so changing the rank changes capacity, not the step size; the
    B matrices start at zero (PEFT's default), so the model computes the locked one at step 0.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    if rank < 1:
        raise ValueError(f"lora: rank must be a positive integer, got {rank}")
    if not targets:
        raise ValueError(f"lora: {type(module).__name__} has no Linear/Conv2d layers to adapt")
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none", target_modules=targets)
    inject_adapter_in_model(config, module)
    return [m for layer in module.modules() if isinstance(layer, LoraLayer) for m in (layer.lora_A, layer.lora_B)]
