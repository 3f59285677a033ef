"""Training strategies of LilT (Khan & Fu, ICLR 2023, Table 1): what is unlocked, what is added.

A strategy gives each tower a plan -- ``unlock`` in {none, layernorm, bitfit, all} and ``adapter``
in {none, layerwise, deep, lora} -- and says whether the projections (and temperature) train.
``apply`` turns a plain ``DualEncoder`` into the adapted, partly locked model; ``count`` gives the
paper's "% Trained" column. ``lilt_lora`` is not in the paper: LoRA (Hu et al., 2022, via PEFT)
in place of the adapters, for a parameter-matched comparison.

    >>> strategy = resolve("lilt_lwa", vision_adapter="deep")    # the deep block instead of LwA
    >>> apply(model, strategy)
    >>> count(model)["percent_trainable"]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

UNLOCKS = ("none", "layernorm", "bitfit", "all")
ADAPTERS = ("none", "layerwise", "deep", "lora")
# LoRA rank of lilt_lora, the one whose trainable count is nearest lilt_lwa's in the paper setting
# (BERT-base/mBERT + DeiT-B @ 256, `mlilt params --no-pretrained --lora-rank R`): 45 trains 14.57 M
# against lilt_lwa's 14.67 M (each rank adds 0.31 M; 48 would train 15.51 M).
LORA_RANK = 45


@dataclass(frozen=True)
class TowerPlan:
    """What one tower trains."""

    unlock: str = field(default="none", metadata={"help": "Pretrained parameters to train: " + "|".join(UNLOCKS)})
    adapter: str = field(default="none", metadata={"help": "Parameters to add and train: " + "|".join(ADAPTERS)})

    def __post_init__(self):
        if self.unlock not in UNLOCKS:
            raise ValueError(f"unlock must be one of {'|'.join(UNLOCKS)}, got {self.unlock!r}")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {'|'.join(ADAPTERS)}, got {self.adapter!r}")
        if self.adapter == "lora" and self.unlock == "all":
            # PEFT's LoRA branch beside a weight that trains in full is a second copy of the same update.
            raise ValueError("adapter='lora' with unlock='all' is refused: every weight of the tower already "
                             "trains, so a low-rank update adds parameters and no capacity; use unlock="
                             "none|layernorm|bitfit with lora, or adapter='none' with unlock='all'")


@dataclass(frozen=True)
class Strategy:
    """A per-tower plan plus the shared head (projections and temperature)."""

    name: str
    text: TowerPlan = TowerPlan()
    vision: TowerPlan = TowerPlan()
    projections: bool = field(default=True, metadata={"help": "Train both projections and the temperature."})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Strategy":
        return cls(name=d["name"], text=TowerPlan(**d["text"]), vision=TowerPlan(**d["vision"]),
                   projections=d["projections"])


def _both(unlock: str = "none", adapter: str = "none") -> dict:
    return dict(text=TowerPlan(unlock, adapter), vision=TowerPlan(unlock, adapter))


# One preset per row of the paper's Table 1 (letters in comments).
PRESETS: dict[str, Strategy] = {s.name: s for s in [
    Strategy("frozen", projections=False),                                       # a
    Strategy("ln_only", **_both("layernorm"), projections=False),                # b
    Strategy("projection_only"),                                                 # c
    Strategy("lilt_ln", **_both("layernorm")),                                   # d
    Strategy("lilt_bitfit", **_both("bitfit")),                                  # e
    Strategy("lilt_da_no_ln", **_both("none", "deep")),                          # f
    Strategy("lilt_da", **_both("layernorm", "deep")),                           # g
    Strategy("lilt_lwa_no_ln", **_both("none", "layerwise")),                    # h
    Strategy("lilt_lwa", **_both("layernorm", "layerwise")),                     # i
    Strategy("lilt_lwa_bitfit", **_both("bitfit", "layerwise")),                 # j
    Strategy("lilt_da_bitfit", **_both("bitfit", "deep")),                       # k
    Strategy("lit", text=TowerPlan("all"), vision=TowerPlan("none")),            # l
    Strategy("lit_reversed", text=TowerPlan("none"), vision=TowerPlan("all")),   # m
    Strategy("lit_lilt_da", text=TowerPlan("all"), vision=TowerPlan("layernorm", "deep")),        # n
    Strategy("lit_lilt_lwa", text=TowerPlan("all"), vision=TowerPlan("layernorm", "layerwise")),  # o
    Strategy("clip", **_both("all")),                                            # p
    Strategy("lilt_lora", **_both("layernorm", "lora")),                         # not in the paper
]}


def resolve(name: str, *, text_unlock: str | None = None, text_adapter: str | None = None,
            vision_unlock: str | None = None, vision_adapter: str | None = None,
            projections: bool | None = None) -> Strategy:
    """A preset by name, with any per-tower field overridden (None keeps the preset's)."""
    if name not in PRESETS:
        raise ValueError(f"unknown strategy {name!r}; presets: {', '.join(PRESETS)}")
    s = PRESETS[name]
    text = dataclasses.replace(s.text, **_given(unlock=text_unlock, adapter=text_adapter))
    vision = dataclasses.replace(s.vision, **_given(unlock=vision_unlock, adapter=vision_adapter))
    return dataclasses.replace(s, text=text, vision=vision, **_given(projections=projections))


def _given(**kwargs) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None}


def apply(model: nn.Module, strategy: Strategy, *, reduction: int = 4, zero_init: bool = True,
          lora_rank: int = LORA_RANK) -> nn.Module:
    """Insert the strategy's adapters into ``model`` (a DualEncoder) and lock everything else."""
    for tower, plan in ((model.text, strategy.text), (model.vision, strategy.vision)):
        if plan.adapter not in tower.adapters_supported:
            raise ValueError(f"strategy {strategy.name!r}: the {tower.kind} tower {tower.name!r} "
                             f"({type(tower).__name__}) cannot take adapter={plan.adapter!r}; it can take "
                             f"adapter={'|'.join(tower.adapters_supported)}")
        if plan.adapter == "lora" and (isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1):
            raise ValueError(f"strategy {strategy.name!r}: lora_rank must be a positive integer, got {lora_rank!r}")
    for tower, plan in ((model.text, strategy.text), (model.vision, strategy.vision)):
        if plan.adapter == "layerwise":
            tower.insert_layerwise_adapters(reduction, zero_init)
        elif plan.adapter == "deep":
            tower.grow()
        elif plan.adapter == "lora":
            tower.insert_lora(lora_rank)

    model.requires_grad_(False)
    for tower, plan in ((model.text, strategy.text), (model.vision, strategy.vision)):
        unlocked = {"none": [], "layernorm": tower.norm_parameters(), "bitfit": tower.bias_parameters(),
                    "all": list(tower.parameters())}[plan.unlock]
        for p in unlocked + tower.added_parameters():
            p.requires_grad_(True)
    model.head_parameters_requires_grad_(strategy.projections)
    model.strategy = strategy
    return model


def count(model: nn.Module) -> dict:
    """Total and trainable parameters, overall and per part, and the paper's ``% trainable``."""
    def tally(params) -> tuple[int, int]:
        params = list(params)
        return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)

    total, trainable = tally(model.parameters())
    parts = {}
    for part, params in (("text", model.text.parameters()), ("vision", model.vision.parameters()),
                         ("head", model.head_parameters())):
        t, tr = tally(params)
        parts[part] = {"total": t, "trainable": tr}
    return {"total": total, "trainable": trainable,
            "percent_trainable": 100.0 * trainable / total if total else 0.0, "parts": parts}
