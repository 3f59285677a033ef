"""The dual encoder: two towers, two projections, one learnable temperature (CLIP; LilT eq. 1).

A trained model is saved as what was trained -- adapters, unlocked parameters, projections,
temperature -- in safetensors, beside a JSON config that names the base models; loading rebuilds
the base models from their names and lays the trained state on top. No pickle anywhere.

    >>> cfg = ModelConfig(text=TextTowerConfig("bert-base-multilingual-cased"),
    ...                   vision=VisionTowerConfig("deit_base_patch16_224", img_size=256),
    ...                   strategy="lilt_lwa")
    >>> model = build_model(cfg)
    >>> model.save_trained("out/")                 # out/model_config.json + out/trained.safetensors
    >>> same = DualEncoder.load_trained("out/")
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mlilt import strategies
from mlilt.towers import TextTower, TextTowerConfig, VisionTower, VisionTowerConfig

CONFIG_NAME = "model_config.json"
WEIGHTS_NAME = "trained.safetensors"
# Inside a training run directory: the final model, and checkpoints named step_00000100 etc.
FINAL_MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"

TEMPERATURE_INIT = 0.07          # CLIP / ALBEF
TEMPERATURE_RANGE = (0.001, 0.5)  # ALBEF's clamp, kept by LilT


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model: base towers, head size, strategy."""

    text: TextTowerConfig
    vision: VisionTowerConfig
    embed_dim: int = field(default=256, metadata={"help": "Width of the shared embedding space."})
    strategy: str = field(default="lilt_lwa", metadata={"help": "Preset name (mlilt.strategies.PRESETS)."})
    text_unlock: str | None = field(default=None, metadata={"help": "Override the preset's text unlock."})
    text_adapter: str | None = field(default=None, metadata={"help": "Override the preset's text adapter."})
    vision_unlock: str | None = field(default=None, metadata={"help": "Override the preset's vision unlock."})
    vision_adapter: str | None = field(default=None, metadata={"help": "Override the preset's vision adapter."})
    projections: bool | None = field(default=None, metadata={"help": "Override whether projections train."})
    adapter_reduction: int = field(default=4, metadata={"help": "Adapter bottleneck d -> d/r (CNN adapters keep at least 8 channels)."})
    adapter_zero_init: bool = field(default=True, metadata={"help": "Zero the adapter up-projection (identity at init)."})
    lora_rank: int = field(default=strategies.LORA_RANK, metadata={"help": "LoRA rank r of adapter=lora (lilt_lora); lora_alpha = r."})

    def resolved_strategy(self) -> strategies.Strategy:
        return strategies.resolve(self.strategy, text_unlock=self.text_unlock, text_adapter=self.text_adapter,
                                  vision_unlock=self.vision_unlock, vision_adapter=self.vision_adapter,
                                  projections=self.projections)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model config: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(text=TextTowerConfig(**d.pop("text")), vision=VisionTowerConfig(**d.pop("vision")), **d)


class DualEncoder(nn.Module):
    """Image and text towers projected into one space, compared by cosine / temperature."""

    def __init__(self, text: TextTower, vision: VisionTower, embed_dim: int = 256,
                 temperature: float = TEMPERATURE_INIT):
        super().__init__()
        self.text = text
        self.vision = vision
        self.text_projection = nn.Linear(text.width, embed_dim)
        self.vision_projection = nn.Linear(vision.width, embed_dim)
        self.temperature = nn.Parameter(torch.tensor(float(temperature)))
        self.strategy: strategies.Strategy | None = None
        self.config: ModelConfig | None = None

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.text_projection.parameters(), *self.vision_projection.parameters(), self.temperature]

    def head_parameters_requires_grad_(self, flag: bool) -> None:
        for p in self.head_parameters():
            p.requires_grad_(flag)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (B, embed_dim), in fp32."""
        return F.normalize(self.vision_projection(self.vision(pixels)).float(), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings (B, embed_dim), in fp32."""
        return F.normalize(self.text_projection(self.text(input_ids, attention_mask)).float(), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, with the temperature clamped into its range in place first (ALBEF)."""
        with torch.no_grad():
            self.temperature.clamp_(*TEMPERATURE_RANGE)
        return 1.0 / self.temperature.float()

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image->text and text->image logits of the batch, (B, B) each."""
        image = self.encode_image(pixels)
        text = self.encode_text(input_ids, attention_mask)
        logits_per_image = self.logit_scale() * image @ text.t()
        return logits_per_image, logits_per_image.t()

    # ---- trained state -------------------------------------------------------------------------
    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what trains: adapters, unlocked parameters, projections, temperature."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def load_trained_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Lay a trained state onto this (already adapted) model; every key must match a trainable one."""
        expected = {name for name, p in self.named_parameters() if p.requires_grad}
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(f"{source}: does not fit this model's strategy "
                             f"{self.strategy.name if self.strategy else '?'}: "
                             f"missing {sorted(missing)[:5]}{'…' if len(missing) > 5 else ''}, "
                             f"unexpected {sorted(unexpected)[:5]}{'…' if len(unexpected) > 5 else ''}")
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                if params[name].shape != value.shape:
                    raise ValueError(f"{source}: {name} has shape {tuple(value.shape)}, "
                                     f"the model expects {tuple(params[name].shape)}")
                params[name].copy_(value)

    def save_trained(self, directory: str | os.PathLike) -> Path:
        """Write ``model_config.json`` and ``trained.safetensors`` atomically into ``directory``."""
        from safetensors.torch import save_file

        if self.config is None:
            raise ValueError("this model has no ModelConfig; build it with mlilt.build_model to save it")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous().cpu() for k, v in self.trained_state_dict().items()}
        config = dict(self.config.to_dict(), resolved_strategy=self.strategy.to_dict(),
                      mlilt_version=_version(), trainable=strategies.count(self)["trainable"])
        atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2)))
        return directory

    @classmethod
    def load_trained(cls, directory: str | os.PathLike) -> "DualEncoder":
        """Rebuild the base models named in ``model_config.json`` and load ``trained.safetensors``."""
        directory = Path(directory)
        config = read_model_config(directory)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no trained state in {directory}")
        check_trained_file(weights)  # before the base models take seconds to build
        model = build_model(config)
        model.load_trained_state_dict(read_trained_state(weights), source=str(weights))
        return model


class DamagedFileError(ValueError):
    """A saved model file that is there but cannot be read (garbage, truncated, half-copied)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path}: damaged ({reason}); {_repair_advice(self.path)}")


def _repair_advice(path: Path) -> str:
    """What to do about a damaged file, by where it lies: a run's model/, a checkpoint, a hub snapshot, a copy."""
    folder = path.parent
    hub = next((part for part in path.parts if part.startswith("models--")), None)
    if hub:
        repo_id = hub[len("models--"):].replace("--", "/")
        return f"download it again: huggingface-cli download {repo_id} --force-download"
    if folder.name == FINAL_MODEL_DIR:
        checkpoints = sorted((folder.parent / CHECKPOINTS_DIR).glob("step_*/" + WEIGHTS_NAME))
        if checkpoints:
            return (f"train with --resume --run_dir {folder.parent} to write it again from the last checkpoint, "
                    f"or load that checkpoint ({checkpoints[-1].parent})")
        return f"restore it from a copy or train {folder.parent} again (it keeps no checkpoint to resume from)"
    if folder.name.startswith("step_") and folder.parent.name == CHECKPOINTS_DIR:
        return (f"load another checkpoint or the run's {FINAL_MODEL_DIR}/; training with --resume falls back "
                "to the previous checkpoint")
    return "copy or export it again from the run it came from"


def _reason(err: Exception) -> str:
    # safetensors says "Error while deserializing header: incomplete metadata, file not fully covered".
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.split("deserializing header: ", 1)[-1]


def check_trained_file(path: str | os.PathLike) -> None:
    """Raise DamagedFileError unless the safetensors header reads and covers the whole file (no tensors read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt"):
            pass
    except SafetensorError as err:
        raise DamagedFileError(path, _reason(err)) from err


def read_trained_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``trained.safetensors``; a damaged file raises DamagedFileError saying what to do."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except SafetensorError as err:
        raise DamagedFileError(path, _reason(err)) from err


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A saved model directory, given it, a training run directory (final model, else latest checkpoint)
    or a hub id of an exported model (``mlilt.hub``)."""
    from mlilt.hub import resolve_run

    path = resolve_run(path)
    if (path / CONFIG_NAME).is_file():
        return path
    if (path / FINAL_MODEL_DIR / CONFIG_NAME).is_file():
        return path / FINAL_MODEL_DIR
    checkpoints = sorted((path / CHECKPOINTS_DIR).glob("step_*/" + CONFIG_NAME))
    if checkpoints:
        return checkpoints[-1].parent
    raise FileNotFoundError(f"{path}: neither a saved model ({CONFIG_NAME}) nor a run directory "
                            f"with {FINAL_MODEL_DIR}/ or {CHECKPOINTS_DIR}/step_*/")


def load(path: str | os.PathLike) -> DualEncoder:
    """Load a trained model from a model directory, a run directory or a hub id (``mlilt.load("ORG/NAME")``)."""
    return DualEncoder.load_trained(resolve_model_dir(path))


def read_model_config(directory: Path) -> ModelConfig:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {directory} a saved mlilt model?")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFileError(path, f"not JSON: {_reason(err)}") from err
    for derived in ("resolved_strategy", "mlilt_version", "trainable"):
        values.pop(derived, None)
    return ModelConfig.from_dict(values)


def build_model(config: ModelConfig, *, pretrained: bool | None = None) -> DualEncoder:
    """Build both towers and the head, then apply the strategy; ``pretrained=False``: random towers."""
    text_cfg, vision_cfg = config.text, config.vision
    if pretrained is not None:
        text_cfg = dataclasses.replace(text_cfg, pretrained=pretrained)
        vision_cfg = dataclasses.replace(vision_cfg, pretrained=pretrained)
    model = DualEncoder(TextTower.from_config(text_cfg), VisionTower.from_config(vision_cfg), config.embed_dim)
    strategies.apply(model, config.resolved_strategy(), reduction=config.adapter_reduction,
                     zero_init=config.adapter_zero_init, lora_rank=config.lora_rank)
    model.config = config
    return model


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())  # mkstemp's 0600 would keep others from reading what they were sent
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the umask (0644 under the usual 022)."""
    umask = os.umask(0o022)  # the portable way to read it; set back at once
    os.umask(umask)
    return 0o666 & ~umask


def _version() -> str:
    from mlilt import __version__

    return __version__
