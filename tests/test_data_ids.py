"""Image and group ids from every layout reach the training batches (positives by id, mlilt.train.loss)."""

import io
import tarfile

import pytest
import torch

from helpers_data import COLOURS, DATA_CONFIG, fake_tokenize, image_bytes, save_image, write_jsonl
from mlilt.data import pairs
from mlilt.data.images import PairCollator
from mlilt.data.pairs import ManifestError, load_pairs
from mlilt.data.transforms import eval_transform


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
