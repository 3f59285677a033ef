"""Pair loaders (every layout), format detection, transforms, robust image opening, the collator, data check."""

import argparse
import io
import json
import logging
import tarfile

import pytest
import torch
from PIL import Image

from mlilt.data import check, pairs
from mlilt.data.images import ImageError, PairCollator, open_image
from mlilt.data.image_keys import coco_id, image_keys
from mlilt.data.pairs import ManifestError, detect_format, load_pairs
from mlilt.data.transforms import ALBEF_OPS, OPS, RandomAugment, eval_transform, train_transform

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)]


def save_image(path, colour=(128, 64, 32), size=(20, 16), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def image_bytes(colour, fmt="JPEG"):
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def rows(ds):
    return list(ds)


# ---------------------------------------------------------------------------------------------------
# COCO Karpathy and ALBEF layouts


@pytest.fixture
def coco(tmp_path):
    """A COCO-shaped folder: train2014/ and val2014/ images, Karpathy and ALBEF manifests elsewhere."""
    root = tmp_path / "coco"
    names = {61844: "train2014/COCO_train2014_000000061844.jpg", 57870: "train2014/COCO_train2014_000000057870.jpg",
             391895: "val2014/COCO_val2014_000000391895.jpg", 522418: "val2014/COCO_val2014_000000522418.jpg"}
    for i, rel in enumerate(names.values()):
        save_image(root / rel, COLOURS[i])
    splits = {61844: "train", 57870: "restval", 391895: "test", 522418: "val"}
    karpathy = {"dataset": "coco", "images": [
        {"filepath": names[c].split("/")[0], "filename": names[c].split("/")[1], "split": splits[c], "cocoid": c,
         "imgid": i, "sentences": [{"raw": f"caption {j} of {c} ", "tokens": []} for j in range(2 if c != 57870 else 1)]}
        for i, c in enumerate(names)]}
    manifests = tmp_path / "annotations"
    manifests.mkdir()
    (manifests / "dataset_coco.json").write_text(json.dumps(karpathy))
    albef = [{"image": names[61844], "caption": "a cat on a mat", "image_id": "coco_61844"},
             {"image": names[57870], "caption": "a dog"},
             {"image": names[391895], "caption": ["one", "two", "three"]}]
    (manifests / "coco_train.json").write_text(json.dumps(albef))
    return root, manifests


def test_karpathy_train_is_train_plus_restval_one_row_per_sentence(coco):
    root, manifests = coco
    ds = load_pairs(manifests / "dataset_coco.json", image_root=root)
    assert detect_format(manifests / "dataset_coco.json") == "coco_karpathy"
    assert ds.column_names == ["image", "caption", "image_id"]
    assert len(ds) == 3  # 2 sentences of the train image + 1 of the restval image
    assert ds[0] == {"image": str(root / "train2014/COCO_train2014_000000061844.jpg"),
                     "caption": "caption 0 of 61844", "image_id": "61844"}
    assert sorted(set(ds["image_id"])) == ["57870", "61844"]
    assert len(load_pairs(manifests / "dataset_coco.json", image_root=root, split="test")) == 2
    assert len(load_pairs(manifests / "dataset_coco.json", image_root=root, split="all")) == 7
    with pytest.raises(ValueError, match="no image has split 'dev'.*restval"):
        load_pairs(manifests / "dataset_coco.json", image_root=root, split="dev")


def test_albef_list_one_row_per_caption(coco):
    root, manifests = coco
    ds = load_pairs(manifests / "coco_train.json", image_root=root)
    assert detect_format(manifests / "coco_train.json") == "albef"
    assert ds["caption"] == ["a cat on a mat", "a dog", "one", "two", "three"]
    assert ds["image_id"][:2] == ["coco_61844", "train2014/COCO_train2014_000000057870.jpg"]  # default: the path
    assert ds["image"][2] == str(root / "val2014/COCO_val2014_000000391895.jpg")
    assert all(Image.open(p).size == (20, 16) for p in ds["image"])


def test_malformed_json_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"image": "a.jpg", "caption": "x"},\n{"image": "b.jpg" "caption": "y"}\n]')
    with pytest.raises(ManifestError, match=r"bad\.json:3: invalid JSON"):
        load_pairs(bad)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"image": "a.jpg", "caption": "x"}, {"image": "b.jpg"}]))
    with pytest.raises(ManifestError, match=r"missing\.json\[1\]: missing required field 'caption'"):
        load_pairs(missing)


# ---------------------------------------------------------------------------------------------------
# JSONL and CSV manifests


def test_jsonl_paths_relative_to_the_manifest_and_default_ids(tmp_path):
    save_image(tmp_path / "img" / "a.png")
    save_image(tmp_path / "img" / "b.jpg")
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [
        {"image": "img/a.png", "caption": "red square"}, "",
        {"image": "img/b.jpg", "caption": "brown square", "image_id": 7}])
    ds = load_pairs(manifest)
    assert detect_format(manifest) == "jsonl"
    assert rows(ds) == [{"image": str(tmp_path / "img/a.png"), "caption": "red square", "image_id": "img/a.png"},
                        {"image": str(tmp_path / "img/b.jpg"), "caption": "brown square", "image_id": "7"}]
    other_root = load_pairs(manifest, image_root=tmp_path / "elsewhere")
    assert other_root[0]["image"] == str(tmp_path / "elsewhere/img/a.png")


def test_jsonl_malformed_line_and_missing_field_name_file_and_line(tmp_path):
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [{"image": "a.png", "caption": "x"}, '{"image": "b.png", '])
    with pytest.raises(ManifestError, match=r"pairs\.jsonl:2: invalid JSON"):
        load_pairs(manifest)
    write_jsonl(manifest, [{"image": "a.png", "caption": "x"}, {"caption": "no image"}])
    with pytest.raises(ManifestError, match=r"pairs\.jsonl:2: missing required field 'image'"):
        load_pairs(manifest)
    write_jsonl(manifest, [{"image": "a.png", "caption": 3}])
    with pytest.raises(ManifestError, match=r"pairs\.jsonl:1: field 'caption' must be a string"):
        load_pairs(manifest)


def test_csv_manifest_with_quoted_multiline_caption(tmp_path):
    save_image(tmp_path / "x.png")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text('image,caption,image_id\nx.png,"a caption, with a comma",\nx.png,"two\nlines",x2\n')
    ds = load_pairs(manifest)
    assert detect_format(manifest) == "csv"
    assert ds["caption"] == ["a caption, with a comma", "two\nlines"]
    assert ds["image_id"] == ["x.png", "x2"]
    manifest.write_text("image,caption\nx.png,ok\nx.png\n")
    with pytest.raises(ManifestError, match=r"pairs\.csv:3: 1 fields, the header has 2"):
        load_pairs(manifest)
    manifest.write_text("path,text\nx.png,ok\n")
    with pytest.raises(ManifestError, match=r"pairs\.csv:1: header lacks column\(s\) image, caption"):
        load_pairs(manifest)


# ---------------------------------------------------------------------------------------------------
# datasets-backed formats


def test_imagefolder_with_metadata_text_column(tmp_path):
    folder = tmp_path / "folder"
    for i in range(3):
        save_image(folder / f"{i}.png", COLOURS[i])
    write_jsonl(folder / "metadata.jsonl", [{"file_name": f"{i}.png", "text": f"square {i}"} for i in range(3)])
    assert detect_format(folder) == "imagefolder"
    ds = load_pairs(folder, cache_dir=str(tmp_path / "cache"))
    assert ds.column_names == ["image", "caption", "image_id"]
    assert sorted(ds["caption"]) == ["square 0", "square 1", "square 2"]
    first = ds[0]
    assert isinstance(first["image"], Image.Image)
    assert first["image"].getpixel((0, 0)) == COLOURS[int(first["image_id"][0])]
    assert first["image_id"] == first["caption"][-1] + ".png"  # the file name, relative to the folder
    undecoded = load_pairs(folder, decode=False, cache_dir=str(tmp_path / "cache"))
    assert undecoded[0]["image"]["path"].endswith(".png")
    streamed = next(iter(load_pairs(folder, streaming=True)))  # ids derived lazily, images still decoded
    assert isinstance(streamed["image"], Image.Image) and streamed["image_id"].endswith(".png")


@pytest.fixture
def hf_table():
    """A datasets table with embedded images, a list-of-captions column and no image_id."""
    import datasets

    return datasets.Dataset.from_dict(
        {"image": [{"bytes": image_bytes(c, "PNG"), "path": None} for c in COLOURS[:2]],
         "caption": [["red one", "red two"], ["green"]], "other": [1, 2]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.List(datasets.Value("string")),
                                    "other": datasets.Value("int64")}))


def test_load_from_disk_dataset_dict_explodes_caption_lists(tmp_path, hf_table):
    import datasets

    datasets.DatasetDict({"train": hf_table, "test": hf_table.select([1])}).save_to_disk(tmp_path / "saved")
    assert detect_format(tmp_path / "saved") == "hf_disk"
    ds = load_pairs(tmp_path / "saved")
    assert ds.column_names == ["image", "caption", "image_id"]
    assert ds["caption"] == ["red one", "red two", "green"]
    assert ds["image_id"] == ["0", "0", "1"]  # no ids, no paths: the row
    assert ds[2]["image"].getpixel((3, 3)) == COLOURS[1]
    assert load_pairs(tmp_path / "saved", split="test")["caption"] == ["green"]
    with pytest.raises(ValueError, match="no split 'val'; splits: train, test"):
        load_pairs(tmp_path / "saved", split="val")


def test_parquet_files_with_image_ids_and_text_column(tmp_path, hf_table):
    table = hf_table.map(lambda r: {"text": r["caption"][0]}, remove_columns=["caption"])
    table = table.add_column("image_id", [61844, 57870])
    (tmp_path / "pq").mkdir()
    table.to_parquet(str(tmp_path / "pq" / "part-0.parquet"))
    assert detect_format(tmp_path / "pq" / "part-0.parquet") == "parquet"
    assert detect_format(str(tmp_path / "pq" / "*.parquet")) == "parquet"
    assert detect_format(tmp_path / "pq") == "parquet"
    ds = load_pairs(tmp_path / "pq", cache_dir=str(tmp_path / "cache"))
    assert rows(ds.remove_columns("image")) == [{"caption": "red one", "image_id": "61844"},
                                                {"caption": "green", "image_id": "57870"}]
    assert ds[0]["image"].getpixel((1, 1)) == COLOURS[0]
    streamed = load_pairs(tmp_path / "pq" / "part-0.parquet", streaming=True)
    assert [r["caption"] for r in streamed] == ["red one", "green"]


def write_shard(path, samples):
    """A webdataset shard: for each (key, image bytes, caption), KEY.jpg and KEY.txt."""
    with tarfile.open(path, "w") as tar:
        for key, data, caption in samples:
            for name, payload in ((f"{key}.jpg", data), (f"{key}.txt", caption.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def test_webdataset_shards_are_streamed(tmp_path):
    import datasets

    write_shard(tmp_path / "shard-000.tar", [("000", image_bytes(COLOURS[0]), "a red square"),
                                            ("001", image_bytes(COLOURS[1]), "a green square")])
    write_shard(tmp_path / "shard-001.tar", [("002", image_bytes(COLOURS[2]), "a blue square")])
    pattern = str(tmp_path / "shard-{000..001}.tar")
    assert detect_format(pattern) == "webdataset"
    assert detect_format(tmp_path / "shard-000.tar") == "webdataset"
    ds = load_pairs(pattern)
    assert isinstance(ds, datasets.IterableDataset)
    assert ds.column_names == ["image", "caption", "image_id"]
    got = rows(ds)
    assert [(r["image_id"], r["caption"]) for r in got] == [
        ("000", "a red square"), ("001", "a green square"), ("002", "a blue square")]
    assert isinstance(got[0]["image"], Image.Image)
    red = got[0]["image"].getpixel((6, 6))
    assert all(abs(a - b) < 12 for a, b in zip(red, COLOURS[0]))  # JPEG
    undecoded = next(iter(load_pairs(tmp_path / "shard-001.tar", decode=False)))
    assert undecoded["image"]["path"] == "002.jpg" and undecoded["image"]["bytes"][:2] == b"\xff\xd8"


# ---------------------------------------------------------------------------------------------------
# Format detection and image identity


def test_auto_detection_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        detect_format(tmp_path / "nope.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format from the name"):
        detect_format(tmp_path / "notes.txt")
    (tmp_path / "weird.json").write_text('"just a string"')
    with pytest.raises(ValueError, match="Karpathy.*ALBEF"):
        detect_format(tmp_path / "weird.json")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="cannot tell the format of this folder"):
        detect_format(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.parquet").write_bytes(b"")
    (mixed / "b.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="ambiguous folder.*parquet and webdataset"):
        detect_format(mixed)
    with pytest.raises(ValueError, match="unknown data format 'tsv'"):
        load_pairs(tmp_path / "notes.txt", format="tsv")


def test_image_keys_recognise_coco_images_across_layouts():
    assert coco_id("COCO_train2014_000000061844.jpg") == "61844"
    assert coco_id("val2014/COCO_val2014_000000391895.jpg") == "391895"
    assert coco_id("000000061844.jpg") == "61844"
    assert coco_id("coco_61844") == "61844"
    assert coco_id("1000092795.jpg") is None  # a Flickr30k id, not a COCO one
    karpathy_row = {"image": "/d/train2014/COCO_train2014_000000061844.jpg", "caption": "x", "image_id": "61844"}
    assert image_keys(karpathy_row) == {"COCO_train2014_000000061844.jpg", "coco:61844"}
    albef_row = {"image": "/d/x/COCO_train2014_000000061844.jpg", "caption": "x", "image_id": "coco_61844"}
    assert image_keys(karpathy_row) == image_keys(albef_row)
    assert image_keys({"image": {"bytes": b"", "path": "000000061844.jpg"}, "image_id": "000000061844"}) == {
        "000000061844.jpg", "coco:61844"}
    assert image_keys({"image": "/f/1000092795.jpg", "image_id": "7"}) == {"1000092795.jpg"}


# ---------------------------------------------------------------------------------------------------
# Transforms

DATA_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.4, 0.3),
               "std": (0.2, 0.25, 0.5), "crop_pct": 0.875, "crop_mode": "center"}


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


def fake_tokenize(texts):
    ids = torch.tensor([[len(t), 1] for t in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


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
# Image and group ids reach the training batches (positives by id, mlilt.train.loss)


def collated_ids(records, key="image_ids"):
    """The ids of ``records`` as the collator hands them to the loss, read back as strings' numbers."""
    return PairCollator(fake_tokenize, eval_transform(DATA_CONFIG, img_size=16))(list(records))[key].tolist()


def numbers(ids):
    from mlilt.data.images import id_number

    return [id_number(i) for i in ids]


def test_collator_skips_the_ids_of_unreadable_images_and_groups_default_to_the_image(tmp_path):
    good = save_image(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    records = [{"image": str(good), "caption": "x", "image_id": "a", "group": "g"},
               {"image": str(tmp_path / "bad.png"), "caption": "y", "image_id": "bad", "group": "g"},
               {"image": str(good), "caption": "z", "image_id": "a2"}]
    assert collated_ids(records) == numbers(["a", "a2"])
    assert collated_ids(records, "group_ids") == numbers(["g", "a2"])
    assert "image_ids" not in PairCollator(fake_tokenize, eval_transform(DATA_CONFIG, img_size=16))(
        [{"image": str(good), "caption": "no id"}])  # hand-made records without ids: no positives by id


def test_coco_karpathy_ids_reach_the_batches_in_training_order(coco):
    from mlilt.train.batches import IndexedBatches

    root, manifests = coco
    ds = load_pairs(manifests / "dataset_coco.json", image_root=root, split="all", decode=False)
    collate = PairCollator(fake_tokenize, eval_transform(DATA_CONFIG, img_size=16))
    data = IndexedBatches(ds, collate, seed=0, batch_size=len(ds), accum=1, rank=0, world=1)
    (batch,) = data.next_step()
    # Two captions of each image share its COCO id (57870 has one): positives of each other.
    assert sorted(batch["image_ids"].tolist()) == sorted(numbers(["61844", "61844", "57870", "391895", "391895",
                                                                  "522418", "522418"]))
    assert torch.equal(batch["group_ids"], batch["image_ids"])


def test_jsonl_and_albef_groups_and_ids_survive_loading(tmp_path, coco):
    save_image(tmp_path / "a.png")
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [
        {"image": "a.png", "caption": "one", "image_id": "noto/1f600", "group": "1f600"},
        {"image": "a.png", "caption": "two", "image_id": 5},
        {"image": "a.png", "caption": "three"}])
    ds = load_pairs(manifest)
    assert ds.column_names == ["image", "caption", "image_id", "group"]
    assert (ds["image_id"], ds["group"]) == (["noto/1f600", "5", "a.png"], ["1f600", "5", "a.png"])
    assert collated_ids(ds, "group_ids") == numbers(["1f600", "5", "a.png"])
    with pytest.raises(ManifestError, match=r"pairs\.jsonl:1: field 'group' must be a string or an integer"):
        load_pairs(write_jsonl(tmp_path / "pairs.jsonl", [{"image": "a.png", "caption": "x", "group": [1]}]))
    root, manifests = coco
    albef = load_pairs(manifests / "coco_train.json", image_root=root)
    assert "group" not in albef.column_names  # no source group: the image is the group
    assert collated_ids(albef) == numbers(["coco_61844", "train2014/COCO_train2014_000000057870.jpg"]
                                          + ["val2014/COCO_val2014_000000391895.jpg"] * 3)


def test_builtin_emoji_xtd_groups_a_concepts_styles(tmp_path, monkeypatch):
    for style in ("noto", "twemoji"):
        save_image(tmp_path / "images" / style / "1f600.png")
    manifest = write_jsonl(tmp_path / "train.jsonl", [
        {"image": f"images/{style}/1f600.png", "caption": "grinning face", "image_id": f"{style}/1f600"}
        for style in ("noto", "twemoji")])
    monkeypatch.setitem(pairs.BUILTIN_SOURCES, "emoji-xtd", lambda: str(manifest))
    ds = load_pairs("emoji-xtd")
    assert (ds["image_id"], ds["group"]) == (["noto/1f600", "twemoji/1f600"], ["1f600", "1f600"])
    assert "group" not in load_pairs(manifest).column_names  # the same file by path: no derived group


def test_hf_table_ids_and_group_column_survive_loading(tmp_path, hf_table):
    table = hf_table.add_column("image_id", ["x", "y"]).add_column("group", ["g", ""])
    table.save_to_disk(tmp_path / "saved")
    ds = load_pairs(tmp_path / "saved", decode=False)
    assert ds.column_names == ["image", "caption", "image_id", "group"]
    assert (ds["image_id"], ds["group"]) == (["x", "x", "y"], ["g", "g", "y"])  # an empty group: the image's
    assert collated_ids(ds) == numbers(["x", "x", "y"])
    assert collated_ids(ds, "group_ids") == numbers(["g", "g", "y"])
    streamed = load_pairs(tmp_path / "saved", decode=False, streaming=True)
    assert collated_ids(streamed, "group_ids") == numbers(["g", "g", "y"])


def test_webdataset_keys_and_groups_reach_the_streamed_batches(tmp_path):
    from mlilt.train.batches import StreamedBatches

    # Every sample names its group (KEY.group.txt): datasets takes a shard's columns from its first sample.
    samples = [("000", COLOURS[0], "red", "g"), ("001", COLOURS[1], "green", "h"), ("002", COLOURS[2], "blue", "g")]
    for shard, part in (("000", samples[:2]), ("001", samples[2:])):
        with tarfile.open(tmp_path / f"shard-{shard}.tar", "w") as tar:
            for key, colour, caption, group in part:
                for name, payload in ((f"{key}.jpg", image_bytes(colour)), (f"{key}.txt", caption.encode()),
                                      (f"{key}.group.txt", group.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    stream = load_pairs(str(tmp_path / "shard-{000..001}.tar"), decode=False)
    assert stream.column_names == ["image", "caption", "image_id", "group"]
    collate = PairCollator(fake_tokenize, eval_transform(DATA_CONFIG, img_size=16))
    data = StreamedBatches(stream, collate, seed=0, per_process=3, accum=1, rank=0, world=1, shuffle_buffer=0)
    (batch,) = data.next_step()
    # Each id travels with its own pair: the caption length (fake_tokenize's first token) identifies it.
    lengths = batch["input_ids"][:, 0].tolist()
    assert dict(zip(lengths, batch["image_ids"].tolist())) == dict(zip([3, 5, 4], numbers(["000", "001", "002"])))
    assert dict(zip(lengths, batch["group_ids"].tolist())) == dict(zip([3, 5, 4], numbers(["g", "h", "g"])))


# ---------------------------------------------------------------------------------------------------
# mlilt data check


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="mlilt data")
    check.add_subparser(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_data_check_reports_problems_with_their_lines(tmp_path, capsys):
    images = tmp_path / "images"
    save_image(images / "ok.png")
    (images / "corrupt.jpg").write_bytes(b"nope")
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [
        {"image": "ok.png", "caption": "fine"},
        {"image": "gone.png", "caption": "the file is missing"},
        {"image": "ok.png", "caption": "   "},
        '{"image": "ok.png", caption: "bad json"}',
        {"image": "corrupt.jpg", "caption": "cannot be decoded"},
        {"image": "gone.png", "caption": "missing again"}])
    code, out = run_cli(["check", str(manifest), "--image-root", str(images)], capsys)
    assert code == 1
    assert f"{manifest}:2: missing image: {images / 'gone.png'} (and 1 more caption(s) of this image)" in out
    assert f"{manifest}:3: empty caption" in out
    assert f"{manifest}:4: malformed record: invalid JSON" in out
    assert f"{manifest}:5: unreadable image: {images / 'corrupt.jpg'}" in out
    assert "5 captions, 3 images checked; 1 malformed record, 1 empty caption, 1 missing image, " \
           "1 unreadable image. 4 problem(s)" in out
    code, out = run_cli(["check", str(manifest), "--image-root", str(images), "--quick"], capsys)
    assert "corrupt.jpg" not in out and "gone.png" in out

    write_jsonl(manifest, [{"image": "ok.png", "caption": "fine"}])
    code, out = run_cli(["check", str(manifest), "--image-root", str(images)], capsys)
    assert code == 0 and out.strip().endswith("OK")


def test_data_check_karpathy_and_webdataset_locations(coco, tmp_path, capsys):
    root, manifests = coco
    (root / "val2014/COCO_val2014_000000522418.jpg").unlink()
    data = json.loads((manifests / "dataset_coco.json").read_text())
    data["images"][0]["sentences"][1]["raw"] = ""
    (manifests / "dataset_coco.json").write_text(json.dumps(data))
    code, out = run_cli(["check", str(manifests / "dataset_coco.json"), "--image-root", str(root)], capsys)
    assert code == 1
    assert f"{manifests / 'dataset_coco.json'}:images[0].sentences[1]: empty caption" in out
    assert f"{manifests / 'dataset_coco.json'}:images[3].sentences[0]: missing image" in out

    shard = write_shard(tmp_path / "s.tar", [("a", image_bytes(COLOURS[0]), "fine"), ("b", b"broken", "bad image")])
    code, out = run_cli(["check", str(shard)], capsys)
    assert code == 1 and f"{shard}: row 1 (image_id b): unreadable image: b.jpg" in out
    assert "2 captions, 2 images checked" in out


# ---- JPEG draft decoding for the training crop ---------------------------------------------------


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
