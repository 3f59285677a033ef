"""XM3600's reader on a small captions.jsonl written in the official format."""

import argparse
import io
import json
import zipfile

import pytest
import torch
import yaml
from PIL import Image

import mlilt
from mlilt import build_model
from mlilt.data.transforms import eval_transform
from mlilt.evaluation.cli import add_eval_parser, add_install_parsers
from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval
from mlilt.evaluation.sets import EvalSetError, MultiCaptionSet, install, load_eval_set

KEYS = ["d89a4889331ce042", "74f94963ee1e135d", "eb4cdfd93268c52c", "0a1b2c3d4e5f6071", "1f2e3d4c5b6a7980"]
EN = [["a red cat", "the small cat sits"], ["a blue car"], ["the green tree", "a big tree", "a tree"],
      ["a bird on the house"], ["the dog runs", "a small dog"]]
SW = [["paka mwekundu"], ["gari la bluu", "gari"], ["mti wa kijani"], [], ["mbwa anakimbia"]]


def entry(captions):
    return {"caption": captions, "caption/tokenized": [c.lower() for c in captions],
            "caption/tokenized/lowercase": [c.lower() for c in captions]}


def write_xm3600(folder):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, en, sw in zip(KEYS, EN, SW):
        obj = {"image/key": key, "image/locale": "sw", "en": entry(en)}
        if sw:
            obj["sw"] = entry(sw)
        obj["quz"] = entry([f"{en[0]} quz"])
        lines.append(json.dumps(obj, ensure_ascii=False))
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def xm(tmp_path):
    data = write_xm3600(tmp_path / "xm3600")
    images = tmp_path / "images"
    images.mkdir()
    for i, key in enumerate(KEYS):
        Image.new("RGB", (8, 8), (50 * i, 255 - 40 * i, 17 * i)).save(images / f"{key}.jpg")
    return load_eval_set("xm3600", data_dir=data, image_root=images)


@pytest.fixture
def tiny_run(tmp_path, tiny_model_config, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    torch.manual_seed(5)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 5, "strategy": "lilt_lwa"}))
    return run


def test_the_reader_finds_every_language_and_caption(xm):
    assert isinstance(xm, MultiCaptionSet) and xm.protocols == ["all", "first"]
    assert xm.languages() == ["en", "quz", "sw"]                 # the YAML's order; image/locale is no language
    assert [im.name for im in xm.images()] == [f"{k}.jpg" for k in KEYS]
    en = xm.captions("en", "all")
    assert en.texts == [c for caps in EN for c in caps] and en.image_index == [0, 0, 1, 2, 2, 2, 3, 4, 4]
    first = xm.captions("en", "first")
    assert first.texts == [caps[0] for caps in EN] and first.image_index == [0, 1, 2, 3, 4]
    sw = xm.captions("sw", "all")
    assert sw.image_index == [0, 1, 1, 2, 4] and sw.missing == 1
    assert xm.select_languages(["SW", "quz"]) == {"sw": "sw", "qu": "quz"}   # Cusco Quechua: tag qu
    with pytest.raises(EvalSetError, match="--captions adds a line-aligned caption file"):
        load_eval_set("xm3600", data_dir=xm.data_dir, captions={"de": "x.txt"})


def test_several_captions_per_image_are_scored_like_cocos(xm, tiny_run):
    opts = EncodeOptions(precision="fp32", progress=False, cache=False)
    loaded = load_for_eval(tiny_run)
    result = evaluate_retrieval(loaded, xm, "all", ["en"], opts=opts, quiet=True)
    model = mlilt.load(tiny_run).eval()
    transform = eval_transform(model.vision.data_config, model.config.vision.img_size)
    with torch.inference_mode():
        pixels = torch.stack([transform(Image.open(im.path).convert("RGB")) for im in xm.images()])
        images = model.encode_image(pixels)
        caps = xm.captions("en", "all")
        tokens = model.text.tokenize(caps.texts)
        texts = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    # Each of the 9 captions a query; an image's hit is any of its captions in the top k.
    assert result["results"]["en"] == pytest.approx(mlilt.retrieval_recall(images, texts, caps.image_index), abs=1e-6)
    assert result["counts"]["en"] == {"images": 5, "captions": 9}
    assert "text_probe" not in result and any("not parallel" in n for n in result["notes"])

    first = evaluate_retrieval(loaded, xm, "first", ["en"], opts=opts, quiet=True)
    assert first["counts"]["en"] == {"images": 5, "captions": 5}
    with torch.inference_mode():
        tokens = model.text.tokenize([c[0] for c in EN])
        texts = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    assert first["results"]["en"] == pytest.approx(mlilt.retrieval_recall(images, texts, torch.arange(5)), abs=1e-6)

    # Swahili has no caption for the 4th image: by default every language is scored on the other 4.
    both = evaluate_retrieval(loaded, xm, "all", ["en", "sw"], opts=opts, quiet=True)
    assert both["pool"] == {"kind": "shared", "images": 4}
    assert both["counts"] == {"en": {"images": 4, "captions": 8}, "sw": {"images": 4, "captions": 5, "missing": 1}}
    own = evaluate_retrieval(loaded, xm, "all", ["en", "sw"], opts=opts, quiet=True, pool="own")
    assert own["counts"]["en"] == {"images": 5, "captions": 9} and own["results"]["en"] == result["results"]["en"]
    assert own["languages"]["sw"]["images"] == 4 and own["languages"]["en"]["images"] == 5


def test_data_xm3600_download_takes_captions_out_of_the_zip_unverified(tmp_path, monkeypatch, capsys):
    source = write_xm3600(tmp_path / "published")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(source / "captions.jsonl", "captions.jsonl")
    requested = []
    monkeypatch.setattr(install, "fetch_url", lambda url, timeout=60.0: requested.append(url) or buffer.getvalue())
    parser = argparse.ArgumentParser(prog="mlilt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_install_parsers(sub.add_parser("data").add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(["data", "xm3600", "--download", "--data-dir", str(tmp_path / "installed")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "CC BY 4.0" in out and "not verified: no published sha256 is recorded for captions.jsonl" in out
    assert requested == ["https://raw.githubusercontent.com/google/crossmodal-3600/"
                         "ad44c380c86cb1240666361caabaf5684507d0ef/web-data/captions.zip"]
    assert (tmp_path / "installed" / "captions.jsonl").read_bytes() == (source / "captions.jsonl").read_bytes()


def test_malformed_lines_name_file_and_line(tmp_path):
    folder = write_xm3600(tmp_path / "xm")
    text = (folder / "captions.jsonl").read_text()
    (folder / "captions.jsonl").write_text(text + '{"en": {"caption": ["no key"]}}\n')
    with pytest.raises(EvalSetError, match=r"captions\.jsonl:6: field 'image/key' is missing"):
        load_eval_set("xm3600", data_dir=folder)
    (folder / "captions.jsonl").write_text(text + text.splitlines()[0] + "\n")
    with pytest.raises(EvalSetError, match=r"captions\.jsonl:6: image 'd89a4889331ce042' appears twice"):
        load_eval_set("xm3600", data_dir=folder)
