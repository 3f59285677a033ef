"""XTD200 on the real published files (../shared/xtd200), and a user's YAML over FLORES-named files."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from conftest import SHARED
from mlilt import build_model
from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval
from mlilt.evaluation.sets import EvalSetError, install, load_eval_set, read_lines, read_spec, find_spec_file
from helpers_eval import mlilt_cli

XTD200 = SHARED / "xtd200"
pytestmark = pytest.mark.skipif(not (XTD200 / "swh_Latn.txt").is_file(), reason=f"no XTD200 files in {XTD200}")


@pytest.fixture
def tiny_run(tmp_path, tiny_model_config):
    run = tmp_path / "run"
    torch.manual_seed(2)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 3, "strategy": "lilt_lwa"}))
    return run


def stand_in_images(root: Path, names: list[str]) -> Path:
    """A distinct 8x8 picture for each COCO name, where xtd200.yaml's image_paths expect it."""
    for i, name in enumerate(names):
        folder = root / ("train2014" if name.startswith("COCO_train2014_") else "val2014")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)).save(folder / name)
    return root


def test_the_published_files_parse_and_the_protocols_select_their_images():
    spec = read_spec(find_spec_file("xtd200"))
    published = spec["source"]["files"]
    assert len(published) == 202 and sorted(published) == sorted(p.name for p in XTD200.glob("*.txt"))
    # The YAML's sha256 are those of the published files (the shared copies are byte for byte).
    for name in ("swh_Latn.txt", "test_image_names.txt", "zho_Hant.txt"):
        assert hashlib.sha256((XTD200 / name).read_bytes()).hexdigest() == published[name]["sha256"]
    xtd = load_eval_set("xtd200", data_dir=XTD200, image_root="/coco")
    codes = xtd.languages()
    assert len(codes) == 201 and "swh_Latn" in codes and "test_image_names" not in codes
    for code in codes:
        assert len(xtd.caption_lines(code)) == 1000, code
    assert len(read_lines(XTD200 / "test_image_names.txt")) == 1000
    assert len(xtd.images("1k")) == 1000 and len(xtd.images("lilt200")) == 200
    assert xtd.images("lilt200")[0].path.startswith("/coco/val2014/COCO_val2014_")
    # ISO codes (any case) find the FLORES files; results are keyed by the canonical tag.
    assert xtd.select_languages(["sw", "YO"]) == {"sw": "swh_Latn", "yo": "yor_Latn"}
    assert xtd.select_languages(["swh_Latn", "zh-Hant", "eng_Latn"]) == {"sw": "swh_Latn", "zh-Hant": "zho_Hant",
                                                                          "en": "eng_Latn"}
    assert len(xtd.select_languages(["all"])) == 201
    with pytest.raises(EvalSetError, match="'xx' is not a language in xtd200"):
        xtd.select_languages(["xx"])


def test_scoring_every_language_on_stand_in_images(home, tiny_run, tmp_path, monkeypatch):
    """Every one of the 201 files is scored (the real YAML plus a protocol of 14 images, to stay fast)."""
    spec = yaml.safe_load(find_spec_file("xtd200").read_text())
    spec["protocols"]["few"] = {"images": "COCO_val2014_000000127[01]*"}
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "xtd200.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("MLILT_EVAL_SETS", str(tmp_path / "sets"))
    names = [n for n in read_lines(XTD200 / "test_image_names.txt") if n.startswith("COCO_val2014_000000127")]
    xtd = load_eval_set("xtd200", data_dir=XTD200, image_root=stand_in_images(tmp_path / "coco", names))
    opts = EncodeOptions(precision="fp32", progress=False, cache=False, batch_size=16, text_batch_size=512)
    result = evaluate_retrieval(load_for_eval(tiny_run), xtd, "few", None, opts=opts, quiet=True)
    assert len(result["results"]) == 201 and result["pool"] == {"kind": "shared", "images": 14}
    assert list(result["results"]) == list(xtd.select_languages(["all"]))     # the set's (file) order
    assert result["languages"]["sw"] == {"code": "swh_Latn", "name": "Swahili", "cc100_gib": 1.6, "tier": 2,
                                         "images": 14}
    assert all(c == {"images": 14, "captions": 14} for c in result["counts"].values())
    assert set(result["text_probe"]) == set(result["results"]) - {"en"}
    assert all(0 <= r["mean"] <= 100 for r in result["results"].values())


def test_a_users_yaml_over_flores_named_files_takes_iso_codes(home, tiny_run, tmp_path, monkeypatch):
    data = tmp_path / "mine"
    (data / "pictures").mkdir(parents=True)
    names = [f"p{i}.png" for i in range(10)]
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (25 * i, 200 - 15 * i, 9 * i)).save(data / "pictures" / name)
    (data / "images.txt").write_text("\n".join(names) + "\n")
    for code in ("eng_Latn", "swh_Latn", "yor_Latn", "amh_Ethi"):
        lines = read_lines(XTD200 / f"{code}.txt")[:10]
        (data / f"{code}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine", "files": {"images": "images.txt", "captions": "{lang}.txt"}, "data_dir": str(data),
        "image_paths": [{"match": "*", "path": "{data_dir}/pictures/{name}"}], "protocols": {"test": {"images": "*"}}}))
    monkeypatch.setenv("MLILT_EVAL_SETS", str(sets))
    assert mlilt_cli("eval", tiny_run, "--eval-set", "mine", "--langs", "sw,YO,am", "--workers", 0, "--quiet") == 0
    result = json.loads((tiny_run / "eval" / "mine_test.json").read_text())
    assert list(result["results"]) == ["am", "sw", "yo"]                  # the files' order
    assert {tag: facts["code"] for tag, facts in result["languages"].items()} == {
        "am": "amh_Ethi", "sw": "swh_Latn", "yo": "yor_Latn"}
    assert [result["languages"][t]["name"] for t in ("am", "sw", "yo")] == ["Amharic", "Swahili", "Yoruba"]
    assert set(result["text_probe"]) == {"am", "sw", "yo"}                 # paired with eng_Latn


def test_data_xtd200_installs_from_a_copy_and_downloads_against_the_recorded_sha256(home, tmp_path, monkeypatch,
                                                                                  capsys):
    dest = tmp_path / "installed"
    assert mlilt_cli("data", "xtd200", "--from", XTD200, "--data-dir", dest) == 0
    assert "Adobe Research License" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in XTD200.glob("*.txt"))
    spec = read_spec(find_spec_file("xtd200"))
    assert spec["source"]["base_url"] == ("https://raw.githubusercontent.com/visheratin/nllb-clip/"
                                          "5cad452a374adb2dbfbb23fb2f19d24e3959c719/")
    requested = []

    def fake_fetch(url, timeout=60.0):
        requested.append(url)
        return (XTD200 / url.rsplit("/", 1)[-1]).read_bytes()

    monkeypatch.setattr(install, "fetch_url", fake_fetch)
    assert mlilt_cli("data", "xtd200", "--download") == 0
    assert len(requested) == 202 and all("/data/xtd200/" in u for u in requested)
    assert len(load_eval_set("xtd200").languages()) == 201                # the default data directory
    assert "not verified" not in capsys.readouterr().out
    monkeypatch.setattr(install, "fetch_url", lambda url, timeout=60.0: b"not the file")
    with pytest.raises(EvalSetError, match="sha256"):
        mlilt_cli("data", "xtd200", "--download", "--data-dir", tmp_path / "bad")
    shutil.rmtree(tmp_path / "bad")
