"""Transforms, robust image opening, the pair collator, and JPEG draft decoding for the training crop."""

import io
import logging

import pytest
import torch
from PIL import Image

from helpers_data import COLOURS, DATA_CONFIG, fake_tokenize, image_bytes, save_image, write_jsonl
from mlilt.data.images import ImageError, PairCollator, open_image
from mlilt.data.pairs import load_pairs
from mlilt.data.transforms import ALBEF_OPS, OPS, RandomAugment, eval_transform, train_transform


# ---------------------------------------------------------------------------------------------------
# Transforms


def test_eval_transform_shape_and_normalisation():
    image = Image.new("RGB", (50, 40), (255, 102, 51))
    pixels = eval_transform(DATA_CONFIG, img_size=32)(image)
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.float32
    expected = [(255 / 255 - 0.5) / 0.2, (102 / 255 - 0.4) / 0.25, (51 / 255 - 0.3) / 0.5]
    assert torch.allclose(pixels.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-3)
    assert eval_transform(DATA_CONFIG)(image).shape == (3, 224, 224)  # size from the data config
    assert eval_transform(DATA_CONFIG, 24, crop_pct=1.0, crop_mode="squash")(image).shape == (3, 24, 24)


def test_train_transform_shape_normalisation_and_randomness():
    torch.manual_seed(0)
    image = Image.new("RGB", (64, 48), (255, 102, 51))
    image.paste((0, 0, 255), (0, 0, 32, 24))
    transform = train_transform(DATA_CONFIG, img_size=32)
    outputs = [transform(image) for _ in range(8)]
    assert all(o.shape == (3, 32, 32) for o in outputs)
    assert not all(torch.equal(outputs[0], o) for o in outputs[1:])
    assert "RandomAugment" in repr(transform) and "scale=(0.2, 1.0)" in repr(transform)
    # Normalised with the tower's statistics: pure blue maps to (0 - mean) / std on the red channel.
    plain = train_transform(DATA_CONFIG, img_size=16, randaugment=False)(Image.new("RGB", (20, 20), (0, 0, 255)))
    assert torch.allclose(plain[0], torch.full((16, 16), -0.5 / 0.2), atol=1e-4)


def test_randaugment_uses_albefs_non_colour_ops_and_keeps_size():
    assert set(ALBEF_OPS) == set(OPS)
    assert not {"Color", "Contrast", "Solarize", "Posterize", "Invert"} & set(ALBEF_OPS)
    image = Image.new("RGB", (30, 20), (10, 120, 240))
    for name, op in OPS.items():
        out = op(image, 7)
        assert out.size == image.size and out.mode == "RGB", name
    torch.manual_seed(0)
    augment = RandomAugment(2, 7)
    assert all(augment(image).size == (30, 20) for _ in range(20))
    with pytest.raises(ValueError, match="unknown augmentation op"):
        RandomAugment(ops=("Identity", "Solarise"))


# ---------------------------------------------------------------------------------------------------
# Robust image opening and the collator


def test_open_image_errors_name_the_file_and_reason(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    noisy = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(noisy, format="PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(noisy.getvalue()[:len(noisy.getvalue()) // 2])
    for path, reason in ((tmp_path / "missing.png", "no such file"), (corrupt, "not a recognised image format"),
                         (truncated, "unreadable image.*truncated")):
        with pytest.raises(ImageError, match=reason) as err:
            open_image(str(path))
        assert isinstance(err.value, ValueError) and str(path) in str(err.value)
    with pytest.raises(ImageError, match="shard.tar/9.jpg: not a recognised"):
        open_image({"bytes": b"xx", "path": "shard.tar/9.jpg"})


def test_open_image_gives_rgb_with_transparency_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    out = open_image(rgba)
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)
    gray = save_image(tmp_path / "g.png", size=(5, 5))
    Image.open(gray).convert("L").save(gray)
    assert open_image(str(gray)).mode == "RGB"
    assert open_image(image_bytes((9, 9, 9), "PNG")).getpixel((0, 0)) == (9, 9, 9)

def test_pair_collator_skips_and_counts_unreadable_images(tmp_path, caplog):
    good = [save_image(tmp_path / f"{i}.png", COLOURS[i]) for i in range(2)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    collate = PairCollator(fake_tokenize, eval_transform(DATA_CONFIG, img_size=16))
    batch = [{"image": str(good[0]), "caption": "aa", "image_id": "0"},
             {"image": str(bad), "caption": "bbbb", "image_id": "1"},
             {"image": str(good[1]), "caption": "ccc", "image_id": "2"}]
    with caplog.at_level(logging.WARNING, logger="mlilt.data.images"):
        out = collate(batch)
        collate(batch)
    assert out["pixels"].shape == (2, 3, 16, 16)
    assert out["input_ids"][:, 0].tolist() == [2, 3]  # the captions of the readable images, in order
    assert out["attention_mask"].shape == (2, 2) and out["skipped"] == 1
    assert collate.skipped == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(bad) in warnings[0]  # warned once per file
    assert collate([batch[1]]) is None and collate.skipped == 3


def test_pair_collator_in_a_dataloader_with_a_real_tokenizer(tmp_path, tiny_towers):
    from torch.utils.data import DataLoader

    from mlilt.towers import TextTower, TextTowerConfig

    text = TextTower.from_config(TextTowerConfig(str(tiny_towers[0]), max_length=8))
    for i in range(3):
        save_image(tmp_path / f"{i}.png", COLOURS[i])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [{"image": f"{i}.png", "caption": "a red cat"} for i in range(3)]
                           + [{"image": "broken.png", "caption": "a dog"}])
    loader = DataLoader(load_pairs(manifest), batch_size=2,
                        collate_fn=PairCollator(text.tokenize, train_transform(DATA_CONFIG, img_size=16)))
    batches = list(loader)
    assert [b["pixels"].shape[0] for b in batches] == [2, 1]
    assert sum(b["skipped"] for b in batches) == 1
    assert batches[0]["input_ids"].shape[0] == 2 and batches[0]["input_ids"].dtype == torch.long


# ---------------------------------------------------------------------------------------------------
# JPEG draft decoding for the training crop


def _photo_jpeg(path, size):
    """A smooth, photo-like JPEG (colour field, no hard noise) of ``size``."""
    import numpy as np

    coarse = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC).save(path, quality=95)
    return path


def test_draft_size_keeps_the_smallest_crop_at_full_output_resolution():
    from mlilt.data.transforms import crop_draft_size

    # COCO's 640x480 at 256 px: the smallest crop (0.2 of the area at ratio 3/4) is ~215 px: no reduction.
    assert crop_draft_size((640, 480), (256, 256)) == (640, 480)
    for size in ((2560, 1920), (1600, 1200), (4000, 3000)):
        w, h = crop_draft_size(size, (256, 256))
        assert w < size[0] and h < size[1]
        # The smallest crop of an image of the drafted size is still no smaller than the output.
        assert (0.2 * w * h * 3 / 4) ** 0.5 >= 256 - 1


def test_open_image_draft_decodes_large_jpegs_smaller_and_small_ones_unchanged(tmp_path):
    from mlilt.data.transforms import train_draft

    draft = train_draft({"input_size": (3, 224, 224)}, 256)
    coco = _photo_jpeg(tmp_path / "coco.jpg", (640, 480))
    big = _photo_jpeg(tmp_path / "big.jpg", (2560, 1920))
    assert open_image(coco, draft).tobytes() == open_image(coco).tobytes()
    assert open_image(big, draft).size == (1280, 960) and open_image(big).size == (2560, 1920)
    png = tmp_path / "big.png"
    Image.open(big).save(png)
    assert open_image(png, draft).size == (2560, 1920)  # only JPEGs have a draft mode


def test_drafted_decode_keeps_every_crop_at_output_resolution(tmp_path):
    """The same crop box (scaled to the drafted size) gives the same 256 px crop, the smallest one included."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from mlilt.data.transforms import train_draft

    config = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    big = _photo_jpeg(tmp_path / "big.jpg", (2560, 1920))
    full, drafted = open_image(big), open_image(big, train_draft(config, 256))
    f = full.size[0] / drafted.size[0]
    assert f == 2
    smallest = round((0.2 * 2560 * 1920 * 3 / 4) ** 0.5)  # 0.2 of the area at ratio 3/4: the shortest side
    boxes = [(0, 0, 1920, 2560), (700, 900, smallest, round(smallest * 4 / 3)), (1000, 100, 800, 800)]
    for top, left, h, w in boxes:
        a = TF.pil_to_tensor(TF.resized_crop(full, top, left, h, w, [256, 256], InterpolationMode.BICUBIC)).float()
        b = TF.pil_to_tensor(TF.resized_crop(drafted, round(top / f), round(left / f), round(h / f), round(w / f),
                                             [256, 256], InterpolationMode.BICUBIC)).float()
        assert (a - b).abs().mean() < 2.0, (top, left, h, w)  # of 255: resampling noise, no blur
    # The training transform gives the same shape either way.
    transform = train_transform(config, 256)
    assert transform(full).shape == transform(drafted).shape == (3, 256, 256)
