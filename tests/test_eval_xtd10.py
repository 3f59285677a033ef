"""XTD10 end to end: the real caption files, 1000 tiny images, `mlilt eval` on a tiny trained run."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import mlilt
from conftest import SHARED
from mlilt import DualEncoder, build_model
from mlilt.evaluation import sets as sets_module
from mlilt.evaluation.sets import install as install_module
from mlilt.evaluation.sets import EvalSetError, load_eval_set, read_lines
from helpers_eval import mlilt_cli

XTD10 = SHARED / "xtd10"
LANGS = ["en", "es", "it", "ko", "pl", "ru", "tr", "zh"]
pytestmark = pytest.mark.skipif(not (XTD10 / "test_image_names.txt").is_file(), reason=f"no XTD10 files in {XTD10}")


def write_images(root: Path, names: list[str], size: int = 8) -> Path:
    """Tiny PNGs (distinct colours) under the folders an image path rule expects."""
    for i, name in enumerate(names):
        folder = root / ("train2014" if name.startswith("COCO_train2014_") else "val2014")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)).save(folder / name)
    return root


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("coco"), read_lines(XTD10 / "test_image_names.txt"))


@pytest.fixture
def tiny_run(tmp_path, tiny_model_config):
    run = tmp_path / "run"
    torch.manual_seed(1)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 17, "strategy": "lilt_lwa"}))
    return run


@pytest.fixture
def count_encoded(monkeypatch):
    """How many images went through DualEncoder.encode_image."""
    seen = {"images": 0, "calls": 0}
    original = DualEncoder.encode_image

    def counting(self, pixels):
        seen["images"] += len(pixels)
        seen["calls"] += 1
        return original(self, pixels)

    monkeypatch.setattr(DualEncoder, "encode_image", counting)
    return seen


def test_real_xtd10_files_read_cleanly():
    xtd = load_eval_set("xtd10", data_dir=XTD10, image_root="/coco")
    assert xtd.languages() == LANGS
    assert len(xtd.images("1k")) == 1000 and len(xtd.images("lilt200")) == 200
    assert all(im.name.startswith("COCO_val2014_") and im.path == f"/coco/val2014/{im.name}"
               for im in xtd.images("lilt200"))
    for lang in LANGS:
        caps = xtd.captions(lang, "1k")
        assert len(caps.texts) == 1000 and caps.image_index == list(range(1000))
        assert all(t and t == t.strip() and "\r" not in t and "\n" not in t for t in caps.texts)
    # Line i is image i: the 200 val2014 captions are the lines of the val2014 names.
    names = read_lines(XTD10 / "test_image_names.txt")
    val = [i for i, n in enumerate(names) if n.startswith("COCO_val2014_")]
    assert xtd.captions("ru", "lilt200").texts == [xtd.caption_lines("ru")[i] for i in val]


def test_eval_end_to_end_images_once_and_cached(home, tiny_run, coco_root, count_encoded, capsys):
    common = ["--eval-set", "xtd10", "--data-dir", XTD10, "--image-root", coco_root, "--workers", "0", "--quiet"]
    assert mlilt_cli("eval", tiny_run, "--protocol", "1k", *common) == 0
    assert count_encoded["images"] == 1000          # once, for all eight languages
    result = json.loads((tiny_run / "eval" / "xtd10_1k.json").read_text())
    assert result["task"] == "retrieval" and result["eval_set"] == "xtd10" and result["protocol"] == "1k"
    assert result["num_images"] == 1000 and list(result["results"]) == LANGS
    for scores in result["results"].values():
        assert set(scores) == {"TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean"}
        assert all(0 <= v <= 100 for v in scores.values())
        assert scores["TR@1"] <= scores["TR@5"] <= scores["TR@10"]
    assert set(result["text_probe"]) == set(LANGS) - {"en"}
    assert all(0 <= v <= 100 for p in result["text_probe"].values() for v in p.values())
    run = result["run"]
    assert run["strategy"] == "lilt_lwa" and run["seed"] == 17 and run["checkpoint"] == "model"
    assert 0 < run["percent_trainable"] < 100 and run["trainable"] < run["total"]
    assert result["cache"]["images"] == "miss" and result["leakage"]["overlap"] is None
    assert set(result["timings"]) == {"image_encoding_s", "text_encoding_s"}
    table = capsys.readouterr().out
    assert "xtd10 / 1k: 1000 images" in table and "\nzh " in table

    # Second run: images and captions come from the embedding cache; numbers identical.
    assert mlilt_cli("eval", tiny_run, "--protocol", "1k", "--out", tiny_run / "again.json", *common) == 0
    assert count_encoded["images"] == 1000
    again = json.loads((tiny_run / "again.json").read_text())
    assert again["cache"]["images"] == "hit" and set(again["cache"]["texts"].values()) == {"hit"}
    assert again["results"] == result["results"] and again["text_probe"] == result["text_probe"]
    assert len(list((home / "cache" / "embeddings").glob("*.safetensors"))) == 1 + len(LANGS)

    # lilt200: the 200 val2014 images, one more image pass (a different protocol).
    assert mlilt_cli("eval", tiny_run, "--protocol", "lilt200", "--langs", "ru,tr", *common) == 0
    assert count_encoded["images"] == 1200
    small = json.loads((tiny_run / "eval" / "xtd10_lilt200.json").read_text())
    assert small["num_images"] == 200 and list(small["results"]) == ["ru", "tr"]
    assert set(small["text_probe"]) == {"ru", "tr"}


def test_scores_equal_a_direct_computation(home, tiny_run, coco_root, cpu_bf16):
    """The harness pairs line i with image i: its numbers equal encoding by hand (in fp32, on any CPU)."""
    from mlilt.data.transforms import eval_transform
    from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval

    loaded = load_for_eval(tiny_run)
    xtd = load_eval_set("xtd10", data_dir=XTD10, image_root=coco_root)
    opts = EncodeOptions(precision="fp32", progress=False, cache=False)
    result = evaluate_retrieval(loaded, xtd, "lilt200", ["ko"], opts=opts, quiet=True)
    model = mlilt.load(tiny_run).eval()
    transform = eval_transform(model.vision.data_config, model.config.vision.img_size)
    with torch.inference_mode():
        pixels = torch.stack([transform(Image.open(im.path).convert("RGB")) for im in xtd.images("lilt200")])
        images = model.encode_image(pixels)
        tokens = model.text.tokenize(xtd.captions("ko", "lilt200").texts)
        texts = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
        english = model.text.tokenize(xtd.captions("en", "lilt200").texts)
        pooled = lambda t: torch.nn.functional.normalize(model.text(t["input_ids"], t["attention_mask"]), dim=-1)  # noqa: E731
        probe = mlilt.retrieval_recall(pooled(english), pooled(tokens), torch.arange(200), ks=(1,))
    assert result["results"]["ko"] == pytest.approx(mlilt.retrieval_recall(images, texts, torch.arange(200)), abs=1e-6)
    assert result["text_probe"]["ko"] == pytest.approx({"en->x@1": probe["TR@1"], "x->en@1": probe["IR@1"]}, abs=1e-6)


@pytest.fixture
def xtd_copy(tmp_path):
    """A writable copy of the XTD10 caption files (image list + en + ru)."""
    copy = tmp_path / "xtd10"
    copy.mkdir()
    for name in ("test_image_names.txt", "test_1kcaptions_en.txt", "test_1kcaptions_ru.txt", "LICENSE.md"):
        shutil.copy(XTD10 / name, copy / name)
    return copy


def test_a_language_added_by_file_or_flag_gets_its_row(home, tiny_run, coco_root, xtd_copy, tmp_path):
    # CRLF, no final newline, like the published files.
    (xtd_copy / "test_1kcaptions_sw.txt").write_bytes(
        "\r\n".join(f"picha ya {i}" for i in range(1000)).encode("utf-8"))
    extra = tmp_path / "captions_fil.txt"
    extra.write_text("\n".join(f"larawan {i}" for i in range(1000)) + "\n", encoding="utf-8")
    xtd = load_eval_set("xtd10", data_dir=xtd_copy, captions={"fil": str(extra)})
    assert xtd.languages() == ["en", "ru", "sw", "fil"]
    assert mlilt_cli("eval", tiny_run, "--data-dir", xtd_copy, "--image-root", coco_root, "--protocol", "lilt200",
                     "--langs", "sw,fil", "--captions", f"fil={extra}", "--workers", "0", "--quiet") == 0
    result = json.loads((tiny_run / "eval" / "xtd10_lilt200.json").read_text())
    assert list(result["results"]) == ["sw", "fil"] and set(result["text_probe"]) == {"sw", "fil"}
    assert result["eval_set_info"]["captions"] == {"fil": str(extra)}
    # A later run of another language adds its row to the same result file; the earlier rows stay.
    assert mlilt_cli("eval", tiny_run, "--data-dir", xtd_copy, "--image-root", coco_root, "--protocol", "lilt200",
                     "--langs", "ru", "--workers", "0", "--quiet") == 0
    merged = json.loads((tiny_run / "eval" / "xtd10_lilt200.json").read_text())
    # ... in the set's order (its files: en, ru, sw), the language only --captions had after them.
    assert list(merged["results"]) == ["ru", "sw", "fil"] and set(merged["text_probe"]) == {"sw", "fil", "ru"}
    assert merged["results"]["sw"] == result["results"]["sw"] and merged["cache"]["images"] == "hit"


def test_malformed_caption_files_name_file_and_line(xtd_copy):
    lines = read_lines(xtd_copy / "test_1kcaptions_en.txt")
    short = xtd_copy / "test_1kcaptions_pl.txt"
    short.write_text("\n".join(lines[:999]) + "\n")
    with pytest.raises(EvalSetError, match=r"test_1kcaptions_pl\.txt:999: the file ends here.*1000 images"):
        load_eval_set("xtd10", data_dir=xtd_copy).captions("pl", "1k")
    long = xtd_copy / "test_1kcaptions_it.txt"
    long.write_text("\n".join(lines + ["one more"]))
    with pytest.raises(EvalSetError, match=r"test_1kcaptions_it\.txt:1001: 1 line\(s\) too many"):
        load_eval_set("xtd10", data_dir=xtd_copy).captions("it", "lilt200")
    holey = xtd_copy / "test_1kcaptions_tr.txt"
    holey.write_text("\r\n".join(lines[:499] + ["  "] + lines[500:]))
    with pytest.raises(EvalSetError, match=r"test_1kcaptions_tr\.txt:500: empty line"):
        load_eval_set("xtd10", data_dir=xtd_copy).captions("tr", "1k")
    (xtd_copy / "test_1kcaptions_de.txt").write_bytes(b"\xff\xfe bad\n")
    with pytest.raises(EvalSetError, match=r"test_1kcaptions_de\.txt:1: not valid UTF-8"):
        load_eval_set("xtd10", data_dir=xtd_copy).captions("de", "1k")
    xtd = load_eval_set("xtd10", data_dir=xtd_copy)
    missing_sw = r"'sw' \(Swahili\) is not a language in xtd10.*test_1kcaptions_sw\.txt.*--captions sw=PATH"
    with pytest.raises(EvalSetError, match=missing_sw):
        xtd.select_languages(["sw"])
    with pytest.raises(EvalSetError, match="'English' is not a language in xtd10.*close matches: en"):
        xtd.select_languages(["English"])
    with pytest.raises(EvalSetError, match="not a language code"):
        load_eval_set("xtd10", data_dir=xtd_copy, captions={"Swahili": "x.txt"})
    with pytest.raises(EvalSetError, match="no protocol '5k'"):
        xtd.images("5k")
    with pytest.raises(EvalSetError, match="--image-root"):
        xtd.images("1k")


def test_eval_errors_before_encoding_on_missing_images(home, tiny_run, xtd_copy, tmp_path, count_encoded):
    with pytest.raises(FileNotFoundError, match=r"200 of 200 image files not found.*--image-root"):
        mlilt_cli("eval", tiny_run, "--data-dir", xtd_copy, "--image-root", tmp_path / "nowhere",
                  "--protocol", "lilt200", "--workers", "0", "--quiet")
    assert count_encoded["calls"] == 0


def test_data_xtd10_from_a_local_copy(tmp_path, capsys):
    dest = tmp_path / "installed"
    assert mlilt_cli("data", "xtd10", "--from", XTD10, "--data-dir", dest) == 0
    out = capsys.readouterr().out
    assert "noncommercial research" in out and "Adobe Research License" in out
    for name in ["LICENSE.md", "test_image_names.txt"] + [f"test_1kcaptions_{x}.txt" for x in LANGS]:
        assert (dest / name).read_bytes() == (XTD10 / name).read_bytes()
    assert load_eval_set("xtd10", data_dir=dest).languages() == LANGS
    with pytest.raises(FileNotFoundError, match="missing LICENSE.md"):
        partial = tmp_path / "partial"
        shutil.copytree(XTD10, partial, ignore=shutil.ignore_patterns("LICENSE.md"))
        mlilt_cli("data", "xtd10", "--from", partial, "--data-dir", tmp_path / "other")


def test_data_xtd10_download_up_to_the_network(tmp_path, home, monkeypatch, capsys):
    spec = sets_module.read_spec(sets_module.find_spec_file("xtd10"))
    assert spec["source"]["base_url"].startswith(
        "https://raw.githubusercontent.com/adobe-research/Cross-lingual-Test-Dataset-XTD10/")
    requested = []

    def fake_fetch(url, timeout=60.0):
        requested.append(url)
        return (XTD10 / url.rsplit("/", 1)[-1]).read_bytes()

    monkeypatch.setattr(install_module, "fetch_url", fake_fetch)
    assert mlilt_cli("data", "xtd10", "--download") == 0
    dest = home / "data" / "xtd10"
    assert sorted(p.name for p in dest.iterdir()) == sorted(spec["source"]["files"])
    assert all(u.startswith(spec["source"]["base_url"]) for u in requested) and len(requested) == 10
    assert any(u.endswith("/XTD10/test_1kcaptions_zh.txt") for u in requested)
    assert load_eval_set("xtd10").languages() == LANGS          # the default data directory
    assert "noncommercial" in capsys.readouterr().out

    # A corrupted download is refused.
    monkeypatch.setattr(install_module, "fetch_url", lambda url, timeout=60.0: b"not the file")
    with pytest.raises(EvalSetError, match="sha256"):
        mlilt_cli("data", "xtd10", "--download", "--data-dir", tmp_path / "bad")
    assert hashlib.sha256((dest / "LICENSE.md").read_bytes()).hexdigest() == \
        spec["source"]["files"]["LICENSE.md"]["sha256"]


def test_an_xtd_shaped_set_described_by_its_yaml(home, tiny_run, tmp_path, monkeypatch):
    """emoji-xtd-v1's YAML (layout form) is enough: images under images/, one protocol, default data dir."""
    root = home / "data" / "emoji-xtd"
    (root / "images").mkdir(parents=True)
    names = [f"{0x1f600 + i:x}.png" for i in range(12)]
    for i, name in enumerate(names):
        Image.new("RGB", (6, 6), (20 * i, 255 - 20 * i, 7 * i)).save(root / "images" / name)
    (root / "test_image_names.txt").write_text("\n".join(names) + "\n")
    for lang, word in (("en", "face"), ("ru", "лицо")):
        (root / f"test_1kcaptions_{lang}.txt").write_text("\n".join(f"{word} {i}" for i in range(12)))
    emoji = load_eval_set("emoji-xtd-v1")
    assert emoji.protocols == ["test"] and emoji.data_dir == root
    assert emoji.images()[3].path == str(root / "images" / names[3])
    assert mlilt_cli("eval", tiny_run, "--eval-set", "emoji-xtd-v1", "--workers", "0", "--quiet") == 0
    result = json.loads((tiny_run / "eval" / "emoji-xtd-v1_test.json").read_text())
    assert result["num_images"] == 12 and set(result["results"]) >= {"en", "ru"} and "ru" in result["text_probe"]


def test_a_jsonl_manifest_set(home, tiny_run, tmp_path, cpu_bf16):
    folder = tmp_path / "corpus"
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(6):
        Image.new("RGB", (6, 6), (40 * i, 10, 200 - 30 * i)).save(folder / "img" / f"{i}.png")
        rows += [{"image": f"img/{i}.png", "caption": f"a red cat {i}", "lang": "en"},
                 {"image": f"img/{i}.png", "caption": f"the small dog {i}", "lang": "en"}]
        if i < 4:
            rows.append({"image": f"img/{i}.png", "caption": f"eine Katze {i}", "lang": "de"})
    manifest = folder / "pairs.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert mlilt_cli("eval", tiny_run, "--eval-set", manifest, "--precision", "fp32", "--workers", "0", "--quiet") == 0
    result = json.loads((tiny_run / "eval" / "pairs_all.json").read_text())
    assert result["settings"]["precision"] == "fp32"
    # German describes 4 of the 6 images: by default both are scored on those 4 (the shared pool) ...
    assert result["counts"] == {"en": {"images": 4, "captions": 8}, "de": {"images": 4, "captions": 4}}
    assert result["pool"] == {"kind": "shared", "images": 4} and result["num_images"] == 6
    assert "text_probe" not in result
    # ... and with --pool own each on all it has.
    assert mlilt_cli("eval", tiny_run, "--eval-set", manifest, "--pool", "own", "--out", folder / "own.json",
                     "--precision", "fp32", "--workers", "0", "--quiet") == 0
    own = json.loads((folder / "own.json").read_text())
    assert own["counts"] == {"en": {"images": 6, "captions": 12}, "de": {"images": 4, "captions": 4}}
    assert own["pool"] == {"kind": "own", "images": 6} and own["results"]["de"] == result["results"]["de"]
    assert own["languages"]["en"] == {"code": "en", "name": "English", "cc100_gib": own["languages"]["en"]["cc100_gib"],
                                      "tier": 5, "images": 6}
    # bf16 autocast runs (emulated on CPUs without native bf16) and stores fp32 embeddings.
    assert mlilt_cli("eval", tiny_run, "--eval-set", manifest, "--precision", "bf16", "--out", folder / "bf16.json",
                     "--workers", "0", "--quiet") == 0
    bf16 = json.loads((folder / "bf16.json").read_text())
    assert bf16["settings"]["precision"] == "bf16" and bf16["cache"]["images"] == "miss"
    assert set(bf16["results"]) == {"en", "de"}
    manifest.write_text(json.dumps({"image": "img/0.png", "caption": "x"}) + "\n")
    with pytest.raises(EvalSetError, match=r"pairs\.jsonl:1: field 'lang' is missing"):
        load_eval_set(manifest)


def test_untrained_preset_says_its_projections_are_random(home, tiny_towers, coco_root, tmp_path, capsys):
    from conftest import TINY_VIT

    text_dir, weights = tiny_towers
    out = tmp_path / "frozen.json"
    assert mlilt_cli("eval", "--preset", "frozen", "--text", text_dir, "--vision", TINY_VIT["name"],
                     "--vision-weights", weights, "--img-size", TINY_VIT["img_size"],
                     "--vision-kwargs", json.dumps(TINY_VIT["model_kwargs"]), "--embed-dim", 16,
                     "--data-dir", XTD10, "--image-root", coco_root, "--protocol", "lilt200", "--langs", "es",
                     "--out", out, "--workers", "0", "--quiet") == 0
    result = json.loads(out.read_text())
    assert result["run"]["untrained_preset"] and result["run"]["trainable"] == 0
    assert any("projections are random" in n for n in result["notes"])
    assert "es" in result["text_probe"] and "projections are random" in capsys.readouterr().out
