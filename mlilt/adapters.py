"""Bottleneck adapters as LilT inserts them (Khan & Fu, ICLR 2023, §3.2; Houlsby et al., 2019).

The adapter is ``x + up(GELU(down(x)))`` with ``down: d -> d/r`` and ``up: d/r -> d``. Where it goes
depends on the tower (post-LN BERT layers versus pre-LN ViT blocks); ``mlilt.towers`` knows the
places, this module only builds the modules.

    >>> adapter = Adapter(768, reduction=4)          # 295,872 parameters, identity at init
    >>> sum(p.numel() for p in adapter.parameters())
    295872
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class Adapter(nn.Module):
    """Residual bottleneck adapter ``x + up(GELU(down(x)))`` (Houlsby et al., 2019)."""

    def __init__(self, dim: int, reduction: int = 4, zero_init: bool = True):
        super().__init__()
        if dim % reduction:
            raise ValueError(f"adapter: width {dim} is not divisible by reduction factor {reduction}")
        self.down = nn.Linear(dim, dim // reduction)
        self.act = nn.GELU()
        self.up = nn.Linear(dim // reduction, dim)
        if zero_init:
            # A zero up-projection makes the adapted model compute exactly what the frozen one does at
            # step 0; the reference code keeps nn.Linear's default init (zero_init=False).
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def adapter_before(module: nn.Module, adapter: Adapter) -> nn.Sequential:
    """``module`` that first runs ``adapter`` on its input (pre-LN blocks: adapter, then norm)."""
    return nn.Sequential(OrderedDict(adapter=adapter, base=module))


def adapter_after(module: nn.Module, adapter: Adapter) -> nn.Sequential:
    """``module`` whose output goes through ``adapter`` (post-LN layers: dropout, then adapter)."""
    return nn.Sequential(OrderedDict(base=module, adapter=adapter))
