"""The two pretrained towers behind one interface: layers, norms, biases, adapters, growth.

Strategies (``mlilt.strategies``) never look inside a model; they ask a tower for its norm and bias
parameters, tell it to take layerwise adapters or LoRA, or to grow by one layer. Everything that
depends on a model family (post-LN BERT layers, pre-LN ViT blocks, CNN blocks) lives here.

Layerwise adapters follow the paper's rule "an adapter before each normalization layer" (§3.2):

- BERT (post-LN): after the dropout of each sublayer output, before its residual LayerNorm.
- ViT (pre-LN): on the block input just before ``norm1`` and ``norm2`` (LilT's code).
- CNN (timm EfficientNet, MobileNet, ResNet …): a ``ConvAdapter`` on the input of the BatchNorm
  that closes each block -- the analogue of BERT's sublayer output before its LayerNorm: the output
  of an EfficientNet/MobileNet inverted residual's projection conv (before ``bn3``), of a
  depthwise-separable block's pointwise conv (before ``bn2``), of a ResNet block's last conv
  (``bn2`` of a BasicBlock, ``bn3`` of a Bottleneck), each before the residual sum -- and before
  the head's norm where the feature map has one (EfficientNet ``conv_head -> bn2``). Places are
  found by structure, not by attribute names: a block is a module held in an ``nn.Sequential``
  (a stage) with BatchNorm children, its closing norm is the last of them; the head is what
  follows the last stage up to its last BatchNorm. The stem, a ResNet's downsample branch and
  inner norms (after the expansion and depthwise convs) take none: they are not block outputs.
  The reduction is the model's ``adapter_reduction`` (d/4, as for transformers), with a floor of
  ``MIN_CONV_BOTTLENECK`` = 8 channels for the narrow early blocks (16-24 channels). On
  EfficientNet-Lite0 that is 17 adapters, 0.98 M parameters, 0.82 M of them on the 1280-wide head.

LoRA (``adapter="lora"``, PEFT's) goes into a tower's linear layers: every ``nn.Linear`` of the
transformer layers (BERT: query/key/value/output/intermediate/output; ViT: qkv/proj/fc1/fc2) and
every ungrouped plain ``nn.Conv2d`` of a CNN's blocks and head (depthwise convolutions have no
low-rank form worth the name, and timm's ``Conv2dSame`` pads in its own forward, which PEFT's
LoRA branch would not reproduce).

    >>> text = TextTower.from_config(TextTowerConfig("bert-base-multilingual-cased"))
    >>> vision = VisionTower.from_config(VisionTowerConfig("deit_base_patch16_224", img_size=256))
    >>> vision.width, text.width
    (768, 768)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from mlilt.adapters import Adapter, ConvAdapter, adapter_after, adapter_before, inject_lora

# "zoo:NAME" names a model of mlilt's offline zoo; it is converted on first use (mlilt.zoo.ensure).
ZOO_PREFIX = "zoo:"
# A text-tower directory may carry this file to declare how its model expects to be used
# (multilingual-e5 wants a "query: " prefix and mean pooling, say).
TEXT_TOWER_DEFAULTS_FILE = "mlilt_text_tower.json"
# A vision `weights` directory holds its weights under this name.
VISION_WEIGHTS_NAME = "model.safetensors"
# A name with one of these suffixes is a local file, never a hub id.
LOCAL_SUFFIXES = (".json", ".safetensors", ".bin", ".pth", ".pt", ".npz", ".yaml", ".yml")


@dataclass
class TextTowerConfig:
    """Which transformers encoder to load and how to pool it."""

    name_or_path: str = field(metadata={"help": "Hub id, local model directory, config.json (architecture only), or 'zoo:NAME'."})
    pretrained: bool = field(default=True, metadata={"help": "Load weights; False builds the architecture with random init."})
    pooling: str | None = field(default=None, metadata={"help": "'cls' (the paper) or 'mean'; None: the directory's default, else 'cls'."})
    text_prefix: str | None = field(default=None, metadata={"help": "Prepended to every text (e5: 'query: '); None: the directory's default, else ''."})
    max_length: int = field(default=30, metadata={"help": "Tokens per text after truncation (the paper uses 30)."})


@dataclass
class VisionTowerConfig:
    """Which timm model to build and where its weights come from."""

    name: str = field(metadata={"help": "timm model name, e.g. deit_base_patch16_224."})
    pretrained: bool = field(default=True, metadata={"help": "Load timm's pretrained weights (or `weights`); False: random init."})
    weights: str | None = field(default=None, metadata={"help": "Local weights file (safetensors or .pth) or a directory holding model.safetensors, used instead of the hub; 'zoo:NAME' for the offline zoo."})
    img_size: int | None = field(default=None, metadata={"help": "Input resolution; ViT position embeddings are resized to it."})
    model_kwargs: dict = field(default_factory=dict, metadata={"help": "Extra keyword arguments for timm.create_model."})


def _mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def _cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return hidden[:, 0]


_POOLERS = {"cls": _cls_pool, "mean": _mean_pool}


def _is_post_ln_sublayer_output(module: nn.Module) -> bool:
    """BERT-family ``*SelfOutput`` / ``*Output``: ``LayerNorm(dropout(dense(h)) + residual)``.

    Also once LoRA wraps its ``dense`` (PEFT's ``base_layer``) or an adapter follows its ``dropout``
    (``adapter_after``'s ``base``), so that a tower's layers are found again after either.
    """
    dense = getattr(module, "dense", None)
    dropout = getattr(module, "dropout", None)
    return (isinstance(getattr(dense, "base_layer", dense), nn.Linear)
            and isinstance(getattr(dropout, "base", dropout), nn.Dropout)
            and isinstance(getattr(module, "LayerNorm", None), nn.LayerNorm))


def _is_pre_ln_block(module: nn.Module) -> bool:
    """timm transformer ``Block``: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""
    return all(hasattr(module, n) for n in ("norm1", "attn", "norm2", "mlp"))


def _is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _cnn_blocks(model: nn.Module) -> list[nn.Module]:
    """Modules held in an ``nn.Sequential`` (a stage) that have BatchNorm children, in order."""
    return [child for m in model.modules() if isinstance(m, nn.Sequential) for child in m
            if any(map(_is_batch_norm, child.children()))]


def _closing_norm_name(module: nn.Module) -> str | None:
    """The last BatchNorm child of ``module`` (timm registers children in forward order)."""
    names = [name for name, child in module.named_children() if _is_batch_norm(child)]
    return names[-1] if names else None


def _cnn_head(model: nn.Module, blocks: list[nn.Module]) -> list[str]:
    """Names of the model's children after its last stage, up to its last BatchNorm (none if no norm)."""
    children = list(model.named_children())
    in_stages = {id(m) for b in blocks for m in b.modules()}
    last_stage = max((i for i, (_, c) in enumerate(children) if any(id(m) in in_stages for m in c.modules())),
                     default=-1)
    head = children[last_stage + 1:]
    norms = [i for i, (_, c) in enumerate(head) if _is_batch_norm(c)]
    return [name for name, _ in head[:norms[-1] + 1]] if norms else []


def _named_targets(root: nn.Module, within: list[nn.Module], accept) -> list[str]:
    """Names (relative to ``root``) of the modules inside ``within`` that ``accept`` takes."""
    inside = {id(m) for w in within for m in w.modules()}
    return [name for name, m in root.named_modules() if id(m) in inside and accept(m)]


def _is_plain_dense_conv(module: nn.Module) -> bool:
    return type(module) is nn.Conv2d and module.groups == 1


def _norm_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
    for m in module.modules():
        if isinstance(m, norm_types):
            yield from m.parameters(recurse=False)


def _bias_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    for name, p in module.named_parameters():
        if name.rsplit(".", 1)[-1] == "bias":
            yield p


class Tower(nn.Module):
    """What every tower offers the strategies."""

    #: what this tower can take, for error messages and strategy checks
    adapters_supported: tuple[str, ...] = ("none", "layerwise", "deep", "lora")
    kind: str = "tower"

    def __init__(self):
        super().__init__()
        # Modules added by adapters/growth; a plain list so they are not registered twice.
        self.__dict__["added_modules"] = []

    @property
    def width(self) -> int:
        raise NotImplementedError

    def norm_parameters(self) -> list[nn.Parameter]:
        """Affine parameters of every normalisation layer (LayerNorm, BatchNorm, GroupNorm)."""
        return list(_norm_parameters(self))

    def bias_parameters(self) -> list[nn.Parameter]:
        """Every bias term, LayerNorm biases included (BitFit, Ben Zaken et al., 2022)."""
        return list(_bias_parameters(self))

    def added_parameters(self) -> list[nn.Parameter]:
        """Parameters of adapters and grown layers."""
        return [p for m in self.added_modules for p in m.parameters()]

    def insert_layerwise_adapters(self, reduction: int = 4, zero_init: bool = True) -> None:
        raise NotImplementedError

    def grow(self) -> None:
        raise NotImplementedError

    def lora_targets(self) -> list[str]:
        """Names (in ``self.model``) of the layers LoRA adapts."""
        raise NotImplementedError

    def insert_lora(self, rank: int) -> None:
        """PEFT's LoRA of rank ``rank`` on ``lora_targets()`` (Hu et al., 2022)."""
        self.added_modules.extend(inject_lora(self.model, self.lora_targets(), rank))


class TextTower(Tower):
    """A transformers encoder (BERT, XLM-R, e5 …) pooled to one vector per text."""

    kind = "text"

    def __init__(self, model: nn.Module, pooling: str = "cls", text_prefix: str = "",
                 tokenizer=None, max_length: int = 30, name: str = ""):
        super().__init__()
        if pooling not in _POOLERS:
            raise ValueError(f"text tower {name!r}: pooling must be one of {sorted(_POOLERS)}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self._pool = _POOLERS[pooling]
        self.text_prefix = text_prefix
        self.max_length = max_length
        self.name = name
        self.__dict__["tokenizer"] = tokenizer

    @classmethod
    def from_config(cls, cfg: TextTowerConfig) -> "TextTower":
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        cfg = dataclasses.replace(cfg, name_or_path=resolve_source(check_text_source(cfg.name_or_path)))
        source = Path(cfg.name_or_path)
        defaults = {}
        if source.is_dir() and (source / TEXT_TOWER_DEFAULTS_FILE).is_file():
            defaults = json.loads((source / TEXT_TOWER_DEFAULTS_FILE).read_text())
        # The pooler is neither used nor counted (the paper pools [CLS] of the last layer).
        no_pooler = {"add_pooling_layer": False}
        tokenizer = None
        if source.is_file():
            if cfg.pretrained:
                raise ValueError(f"text tower {cfg.name_or_path}: a config file has no weights; "
                                 "pass a model directory or hub id, or pretrained=False")
            config = _config_from_json(source)
            model = _with_optional_kwargs(AutoModel.from_config, config, **no_pooler)
        elif cfg.pretrained:
            with _quiet_transformers():  # its load report lists the pooler weights we drop on purpose
                model = _with_optional_kwargs(AutoModel.from_pretrained, cfg.name_or_path, **no_pooler)
            tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path)
        else:
            config = AutoConfig.from_pretrained(cfg.name_or_path)
            model = _with_optional_kwargs(AutoModel.from_config, config, **no_pooler)
            try:
                tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path)
            except (OSError, ValueError):
                tokenizer = None  # architecture only: counting parameters needs no tokenizer
        if getattr(model, "pooler", None) is not None:
            model.pooler = None
        return cls(model,
                   pooling=cfg.pooling or defaults.get("pooling", "cls"),
                   text_prefix=cfg.text_prefix if cfg.text_prefix is not None else defaults.get("text_prefix", ""),
                   tokenizer=tokenizer, max_length=cfg.max_length, name=cfg.name_or_path)

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    def layers(self) -> nn.ModuleList:
        """The encoder's transformer layers, found by type rather than by attribute path."""
        for m in self.model.modules():
            if isinstance(m, nn.ModuleList) and len(m) and any(map(_is_post_ln_sublayer_output, m[0].modules())):
                return m
        raise TypeError(f"text tower {self.name!r}: found no stack of BERT-style (post-LN) layers "
                        f"in {type(self.model).__name__}")

    def tokenize(self, texts: list[str], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Prefix, tokenize, pad and truncate to ``max_length``."""
        if self.tokenizer is None:
            raise RuntimeError(f"text tower {self.name!r} was built from a config alone and has no tokenizer")
        batch = self.tokenizer([self.text_prefix + t for t in texts], padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {k: batch[k].to(device) if device else batch[k] for k in ("input_ids", "attention_mask")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._pool(hidden, attention_mask)

    def insert_layerwise_adapters(self, reduction: int = 4, zero_init: bool = True) -> None:
        """An adapter after the dropout of each sublayer output, before its residual LayerNorm."""
        for layer in self.layers():
            for sub in [m for m in layer.modules() if _is_post_ln_sublayer_output(m)]:
                adapter = Adapter(sub.dense.out_features, reduction, zero_init)
                sub.dropout = adapter_after(sub.dropout, adapter)
                self.added_modules.append(adapter)

    def grow(self) -> None:
        """Append one freshly initialised layer of the encoder's own type (the deep adapter)."""
        layers = self.layers()
        new = copy.deepcopy(layers[-1])
        new.apply(self.model._init_weights)
        if hasattr(new, "layer_idx"):
            new.layer_idx = len(layers)
        layers.append(new)
        self.model.config.num_hidden_layers = len(layers)
        self.added_modules.append(new)

    def lora_targets(self) -> list[str]:
        """Every Linear of the transformer layers (attention and feed-forward)."""
        return _named_targets(self.model, [self.layers()], lambda m: isinstance(m, nn.Linear))


class VisionTower(Tower):
    """A timm image model pooled to one vector per image; ``from_config`` picks the family."""

    kind = "vision"

    def __init__(self, model: nn.Module, name: str = "", img_size: int | None = None):
        super().__init__()
        self.model = model
        self.name = name
        self.img_size = img_size

    @classmethod
    def from_config(cls, cfg: VisionTowerConfig) -> "VisionTower":
        model = _create_timm_model(cfg)
        blocks = getattr(model, "blocks", None)
        if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) and _is_pre_ln_block(blocks[0]):
            return ViTTower(model, name=cfg.name, img_size=cfg.img_size)
        if hasattr(model, "forward_features"):
            return CNNTower(model, name=cfg.name, img_size=cfg.img_size)
        raise TypeError(f"vision tower {cfg.name!r}: {type(model).__name__} has neither transformer blocks "
                        "nor a forward_features feature map")

    @property
    def width(self) -> int:
        return self.model.num_features

    @property
    def data_config(self) -> dict:
        """Input size, interpolation, mean and std the weights expect; input size as built (``img_size``)."""
        import timm.data

        config = timm.data.resolve_data_config({}, model=self.model)
        if self.img_size:
            config["input_size"] = (config["input_size"][0], self.img_size, self.img_size)
        return config


class ViTTower(VisionTower):
    """ViT / DeiT / DINO: pre-LN blocks, pooled as timm pools them ([CLS] for DeiT)."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(pixels), pre_logits=True)

    def layers(self) -> nn.Sequential:
        return self.model.blocks

    def insert_layerwise_adapters(self, reduction: int = 4, zero_init: bool = True) -> None:
        """An adapter on the block input just before ``norm1`` and just before ``norm2`` (LilT code)."""
        for block in self.model.blocks:
            for norm_name in ("norm1", "norm2"):
                norm = getattr(block, norm_name)
                adapter = Adapter(norm.normalized_shape[0], reduction, zero_init)
                setattr(block, norm_name, adapter_before(norm, adapter))
                self.added_modules.append(adapter)

    def grow(self) -> None:
        """Append one freshly initialised block of the model's own type before the final norm."""
        from timm.models.vision_transformer import init_weights_vit_timm

        new = copy.deepcopy(self.model.blocks[-1])
        new.apply(init_weights_vit_timm)
        self.model.blocks.append(new)
        self.added_modules.append(new)

    def lora_targets(self) -> list[str]:
        """Every Linear of the transformer blocks (qkv, proj, fc1, fc2)."""
        return _named_targets(self.model, [self.model.blocks], lambda m: isinstance(m, nn.Linear))


class CNNTower(VisionTower):
    """A CNN whose last feature map is read as a token sequence, mean-pooled.

    BatchNorm statistics stay frozen (eval mode) in training: unlocking norms trains only their
    affine parameters, and a locked CNN stays exactly the pretrained one.
    """

    def __init__(self, model: nn.Module, name: str = "", img_size: int | None = None):
        super().__init__(model, name, img_size)
        self.blocks = nn.Sequential()  # grown transformer blocks over the feature tokens

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(pixels)
        return self.blocks(tokens).mean(dim=1)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Last feature map (B, C, H, W) as tokens (B, H*W, C)."""
        return self.model.forward_features(pixels).flatten(2).transpose(1, 2)

    def train(self, mode: bool = True) -> "CNNTower":
        super().train(mode)
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def adapter_places(self) -> list[tuple[nn.Module, str]]:
        """(parent, norm name) of each BatchNorm that takes a layerwise adapter: block closers, then the head's."""
        blocks = _cnn_blocks(self.model)
        places = [(block, _closing_norm_name(block)) for block in blocks]
        head = _cnn_head(self.model, blocks)
        if head:
            places.append((self.model, head[-1]))
        if not places:
            raise TypeError(f"vision tower {self.name!r}: found no blocks with BatchNorm layers in "
                            f"{type(self.model).__name__} for layerwise adapters")
        return places

    def insert_layerwise_adapters(self, reduction: int = 4, zero_init: bool = True) -> None:
        """A 1x1-conv adapter on the input of each block's closing BatchNorm and of the head's (module docstring)."""
        for parent, norm_name in self.adapter_places():
            norm = getattr(parent, norm_name)
            adapter = ConvAdapter(norm.num_features, reduction, zero_init)
            setattr(parent, norm_name, adapter_before(norm, adapter))
            self.added_modules.append(adapter)

    def lora_targets(self) -> list[str]:
        """Every ungrouped plain Conv2d of the blocks and the head (module docstring)."""
        blocks = _cnn_blocks(self.model)
        head = [getattr(self.model, name) for name in _cnn_head(self.model, blocks)]
        return _named_targets(self.model, blocks + head, _is_plain_dense_conv)

    def grow(self) -> None:
        """Append a transformer block over the feature tokens (heads of width 64)."""
        from timm.models.vision_transformer import Block, init_weights_vit_timm

        dim = self.width
        heads = max(1, dim // 64) if dim % 64 == 0 else 1
        new = Block(dim, num_heads=heads, mlp_ratio=4.0, qkv_bias=True)
        new.apply(init_weights_vit_timm)
        self.blocks.append(new)
        self.added_modules.append(new)


def _create_timm_model(cfg: VisionTowerConfig) -> nn.Module:
    import timm

    check_timm_name(cfg.name)
    kwargs = dict(cfg.model_kwargs, num_classes=0)
    if cfg.pretrained and cfg.weights:
        weights = Path(resolve_source(cfg.weights))
        if weights.is_dir():
            weights = weights / VISION_WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"vision tower {cfg.name!r}: weights file {weights} does not exist")
        # timm loads the file through the model's own checkpoint filter (position-embedding resize).
        # Some timm releases mark ViT configs `custom_load` (their JAX .npz reader) and would hand it
        # our safetensors/.pth file; only an .npz file is meant for it.
        kwargs["pretrained_cfg_overlay"] = dict(file=str(weights), custom_load=weights.suffix == ".npz")
    if cfg.img_size:
        kwargs["img_size"] = cfg.img_size
    try:
        return timm.create_model(cfg.name, pretrained=cfg.pretrained, **kwargs)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        del kwargs["img_size"]  # CNNs take any input size; img_size then only shapes the transforms
        return timm.create_model(cfg.name, pretrained=cfg.pretrained, **kwargs)


def looks_like_local_path(name: str) -> bool:
    """Whether ``name`` can only mean a file or folder: a hub id is ``NAME`` or ``ORG/NAME``, with no suffix,
    and a local folder named like its ORG (``runs/x``) makes ``ORG/NAME`` a path."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)
            or Path(name).suffix in LOCAL_SUFFIXES or ("/" in name and Path(name.split("/")[0]).is_dir()))


def check_text_source(name: str) -> str:
    """``name``, unless it is meant as a local path that does not exist (it is then no hub id either)."""
    if name.startswith(ZOO_PREFIX) or not looks_like_local_path(name) or Path(name).expanduser().exists():
        return name
    raise ValueError(f"{name}: no such file or directory; expected a model directory, a config.json, "
                     "'zoo:NAME', or a hub id such as bert-base-multilingual-cased")


def check_timm_name(name: str) -> str:
    """``name``, unless timm has no such model (then the error suggests close names)."""
    import difflib

    import timm

    if ":" in name or timm.is_model(name):  # hf-hub:ORG/NAME and local-dir:PATH are timm's own sources
        return name
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
    raise ValueError(f"{name!r} is not a timm model" + (f"; did you mean {', '.join(close)}?" if close
                                                         else "; timm.list_models() lists them"))


def check_tower_names(text: str | None, vision: str | None, *, text_field: str, vision_field: str) -> None:
    """A one-line ValueError naming the field when a text source or a vision model name cannot be loaded."""
    for value, check, field_name in ((text, check_text_source, text_field), (vision, check_timm_name, vision_field)):
        if value is not None:
            try:
                check(value)
            except ValueError as err:
                raise ValueError(f"{field_name}: {err}") from None


def resolve_source(name: str) -> str:
    """A local path for ``zoo:NAME`` (converting the zoo model if needed); any other name unchanged."""
    if not name.startswith(ZOO_PREFIX):
        return name
    from mlilt import zoo

    return str(zoo.ensure(name[len(ZOO_PREFIX):]))


def _config_from_json(path: Path):
    from transformers import AutoConfig

    values = json.loads(path.read_text())
    if "model_type" not in values:
        raise ValueError(f"{path}: a text-tower config file needs a 'model_type' field (e.g. \"bert\")")
    return AutoConfig.for_model(values.pop("model_type"), **values)


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _with_optional_kwargs(fn, *args, **optional):
    """Call ``fn`` with ``optional`` kwargs if it accepts them (BERT's add_pooling_layer), else without."""
    try:
        return fn(*args, **optional)
    except TypeError as err:
        if not any(k in str(err) for k in optional):
            raise
        return fn(*args)
