"""Image transforms: the paper's training augmentation and the tower's evaluation preprocessing.

    from mlilt.data.transforms import eval_transform, train_transform
    cfg = model.vision.data_config                            # timm: input_size, mean, std, crop_pct, ...
    train = train_transform(cfg, img_size=256)                # PIL RGB -> float tensor (3, 256, 256)
    test = eval_transform(cfg, img_size=256)

Training (LilT, after ALBEF): ``RandomResizedCrop(img_size, scale=(0.2, 1.0), bicubic)``, horizontal
flip, then ALBEF's ``RandomAugment(2, 7)`` restricted to the ops ALBEF and LilT pass it::

    Identity AutoContrast Equalize Brightness Sharpness ShearX ShearY TranslateX TranslateY Rotate

The ops left out are the ones that change colours or invert tones -- Color, Contrast, Solarize,
Posterize, Invert -- because a caption that says "a red car" must stay true of the augmented image.
(Brightness and Sharpness only brighten and sharpen at magnitude 7: the enhancement factor is 1.36.)
The op semantics follow ALBEF's implementation: two ops drawn with replacement, each applied with
probability 0.5 at magnitude 7 of 10: shear 0.21, translation 7 pixels, rotation 21 degrees, each
with a random sign, the uncovered area filled with grey (128, 128, 128).
torchvision's ``RandAugment`` has a fixed op list (colour ops included), hence this small class.

Evaluation: timm's own preprocessing for the tower (resize by ``crop_pct``, centre crop), at the
model's resolution. ALBEF/LilT evaluate by squashing the image to a square with no crop; pass
``crop_pct=1.0, crop_mode="squash"`` to reproduce that exactly. Both normalise with the tower's mean/std.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from PIL import Image, ImageEnhance, ImageOps

# Magnitudes as ALBEF's RandomAugment maps them (levels out of 10).
MAX_LEVEL = 10
TRANSLATE_PIXELS = 10  # at level 10; absolute pixels, as in ALBEF
FILL = (128, 128, 128)

ALBEF_OPS = ("Identity", "AutoContrast", "Equalize", "Brightness", "Sharpness",
             "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _signed(value: float) -> float:
    return -value if torch.rand(()) < 0.5 else value


def _affine(img: Image.Image, matrix: tuple) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR,
                         fillcolor=FILL)


def _identity(img, level):
    return img


def _autocontrast(img, level):
    return ImageOps.autocontrast(img)


def _equalize(img, level):
    return ImageOps.equalize(img)


def _enhance_factor(level: float) -> float:
    return level / MAX_LEVEL * 1.8 + 0.1


def _brightness(img, level):
    return ImageEnhance.Brightness(img).enhance(_enhance_factor(level))


def _sharpness(img, level):
    return ImageEnhance.Sharpness(img).enhance(_enhance_factor(level))


def _shear_x(img, level):
    return _affine(img, (1, _signed(level / MAX_LEVEL * 0.3), 0, 0, 1, 0))


def _shear_y(img, level):
    return _affine(img, (1, 0, 0, _signed(level / MAX_LEVEL * 0.3), 1, 0))


def _translate_x(img, level):
    return _affine(img, (1, 0, _signed(level / MAX_LEVEL * TRANSLATE_PIXELS), 0, 1, 0))


def _translate_y(img, level):
    return _affine(img, (1, 0, 0, 0, 1, _signed(level / MAX_LEVEL * TRANSLATE_PIXELS)))


def _rotate(img, level):
    return img.rotate(_signed(level / MAX_LEVEL * 30), resample=Image.Resampling.BILINEAR, fillcolor=FILL)


OPS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "Identity": _identity, "AutoContrast": _autocontrast, "Equalize": _equalize,
    "Brightness": _brightness, "Sharpness": _sharpness, "ShearX": _shear_x, "ShearY": _shear_y,
    "TranslateX": _translate_x, "TranslateY": _translate_y, "Rotate": _rotate,
}


class RandomAugment:
    """ALBEF's RandAugment on PIL images: ``num_ops`` ops with replacement, each with probability 0.5."""

    def __init__(self, num_ops: int = 2, magnitude: float = 7, ops: tuple[str, ...] = ALBEF_OPS, prob: float = 0.5):
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f"unknown augmentation op(s) {unknown}; known: {', '.join(OPS)}")
        self.num_ops, self.magnitude, self.ops, self.prob = num_ops, magnitude, tuple(ops), prob

    def __call__(self, img: Image.Image) -> Image.Image:
        # torch's RNG, like torchvision's crops and flips: DataLoader seeds it per worker.
        for index in torch.randint(len(self.ops), (self.num_ops,)).tolist():
            if torch.rand(()) < self.prob:
                img = OPS[self.ops[index]](img, self.magnitude)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, ops={list(self.ops)})"


def _size(data_config: dict, img_size: int | None) -> tuple[int, int]:
    if img_size is not None:
        return (int(img_size), int(img_size))
    height, width = data_config["input_size"][-2:]
    return (int(height), int(width))


def train_transform(data_config: dict, img_size: int | None = None, *, scale: tuple[float, float] = (0.2, 1.0),
                    randaugment: bool = True) -> Callable[[Image.Image], torch.Tensor]:
    """The paper's training augmentation; PIL RGB -> normalised float tensor (3, H, W).

    ``img_size`` (the model's resolution) overrides ``data_config["input_size"]``: timm reports the
    pretrained resolution even for a model built at another one.
    """
    from torchvision import transforms as T

    steps = [T.RandomResizedCrop(_size(data_config, img_size), scale=scale,
                                 interpolation=T.InterpolationMode.BICUBIC),
             T.RandomHorizontalFlip()]
    if randaugment:
        steps.append(RandomAugment(2, 7))
    steps += [T.ToTensor(), T.Normalize(mean=data_config["mean"], std=data_config["std"])]
    return T.Compose(steps)


def crop_draft_size(size: tuple[int, int], out_size: tuple[int, int], scale_min: float = 0.2,
                    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int]:
    """The smallest (width, height) to decode a ``size`` JPEG at so that no RandomResizedCrop is upsampled more.

    RandomResizedCrop's smallest crop has area ``scale_min * W * H`` at the most extreme aspect ratio, so
    its shorter side is ``sqrt(scale_min * W * H * min(ratio[0], 1 / ratio[1]))``. Where even that side
    is at least twice the output side, the crop is always downsampled, and PIL's ``draft`` may decode the
    JPEG at 1/2, 1/4 or 1/8 scale (in the DCT, much cheaper) as long as that crop keeps the output's
    resolution. COCO's 640x480 at 256 px: the smallest crop is 215 px, no reduction.
    """
    width, height = size
    side = math.sqrt(scale_min * width * height * min(ratio[0], 1 / ratio[1]))
    factor = side / max(out_size)
    if factor < 2:
        return size
    return (math.ceil(width / factor), math.ceil(height / factor))


def train_draft(data_config: dict, img_size: int | None = None, *, scale: tuple[float, float] = (0.2, 1.0)
                ) -> Callable[[tuple[int, int]], tuple[int, int]]:
    """The JPEG decode size that :func:`train_transform` with the same arguments needs (``open_image(draft=)``)."""
    import functools

    height, width = _size(data_config, img_size)
    return functools.partial(crop_draft_size, out_size=(width, height), scale_min=scale[0])


def eval_transform(data_config: dict, img_size: int | None = None, *, crop_pct: float | None = None,
                   crop_mode: str | None = None) -> Callable[[Image.Image], torch.Tensor]:
    """The tower's evaluation preprocessing (timm): resize, centre crop, normalise; PIL RGB -> (3, H, W)."""
    from timm.data import create_transform

    height, width = _size(data_config, img_size)
    return create_transform(
        input_size=(3, height, width), is_training=False,
        interpolation=data_config.get("interpolation", "bicubic"),
        mean=tuple(data_config["mean"]), std=tuple(data_config["std"]),
        crop_pct=crop_pct if crop_pct is not None else data_config.get("crop_pct"),
        crop_mode=crop_mode if crop_mode is not None else data_config.get("crop_mode"))
