"""Pair loaders (every layout: COCO Karpathy, ALBEF, JSONL, CSV, datasets-backed), format detection, image identity."""

import json

import pytest
from PIL import Image

from helpers_data import COLOURS, image_bytes, save_image, write_jsonl, write_shard
from mlilt.data.image_keys import coco_id, image_keys
from mlilt.data.pairs import ManifestError, detect_format, load_pairs


def rows(ds):
    return list(ds)


# ---------------------------------------------------------------------------------------------------
# COCO Karpathy and ALBEF layouts


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
