"""mlilt search: an index built once and updated file by file; planted nearest files; HTML and contact sheet."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image

from mlilt.cli import main as mlilt_main
from mlilt.evaluation.harness import EncodeOptions, image_transform
from mlilt.model import DualEncoder, build_model, load
from mlilt.search import Index
from mlilt.sheets import contact_sheet_size

FP32 = ["--precision", "fp32", "--workers", "0", "--quiet"]


@pytest.fixture
def run(tmp_path, tiny_model_config):
    torch.manual_seed(1)
    build_model(tiny_model_config("lilt_lwa")).save_trained(tmp_path / "run" / "model")
    return tmp_path / "run"


@pytest.fixture
def folder(tmp_path):
    """Eight distinct noise images (no two alike, so no tied scores)."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(8):
        where = root / "sub" if i % 3 == 0 else root
        Image.effect_noise((24, 24), 20 + 9 * i).convert("RGB").rotate(11 * i).save(where / f"p{i}.png")
    return root


@pytest.fixture
def encoded(monkeypatch):
    """Images that went through DualEncoder.encode_image."""
    seen = {"images": 0}
    original = DualEncoder.encode_image

    def counting(self, pixels):
        seen["images"] += len(pixels)
        return original(self, pixels)

    monkeypatch.setattr(DualEncoder, "encode_image", counting)
    return seen


def search(capsys, *argv) -> list[dict]:
    capsys.readouterr()
    assert mlilt_main(["search", *map(str, argv), "--json", *FP32]) == 0
    return json.loads(capsys.readouterr().out)


def test_index_is_built_once_and_follows_the_folder(home, run, folder, encoded, capsys):
    hits = search(capsys, run, "--images", folder, "a red car", "-k", "20")[0]["hits"]
    assert encoded["images"] == 8 and len(hits) == 8
    assert len(list((home / "search").glob("*.safetensors"))) == 1

    encoded["images"] = 0
    again = search(capsys, run, "--images", folder, "a red car", "-k", "20")[0]["hits"]
    assert encoded["images"] == 0 and again == hits  # second search: nothing embedded, same answer

    Image.effect_noise((24, 24), 99).convert("RGB").save(folder / "new.png")
    added = search(capsys, run, "--images", folder, "a red car", "-k", "20")[0]["hits"]
    assert encoded["images"] == 1  # only the added file
    assert str((folder / "new.png").resolve()) in {h["path"] for h in added} and len(added) == 9

    (folder / "p1.png").unlink()
    encoded["images"] = 0
    after = search(capsys, run, "--images", folder, "a red car", "-k", "20")[0]["hits"]
    assert encoded["images"] == 0 and len(after) == 8
    assert str((folder / "p1.png").resolve()) not in {h["path"] for h in after}


def test_planted_nearest_file_for_a_text_and_an_image_query(run, folder, tmp_path):
    model = load(run).eval()
    planted = folder / "p5.png"
    query = "the small bird"
    # Plant: shift the text projection so the query embeds exactly where the planted image does.
    with torch.no_grad():
        pixels = image_transform(model)(Image.open(planted).convert("RGB"))[None]
        image_side = model.vision_projection(model.vision(pixels))[0]
        tokens = model.text.tokenize([query])
        text_side = model.text_projection(model.text(tokens["input_ids"], tokens["attention_mask"]))[0]
        model.text_projection.bias += image_side - text_side
    index = Index(model, opts=EncodeOptions(precision="fp32", progress=False))
    assert index.add(sorted(folder.rglob("*.png"))) == 8
    top = index.query([query, "a red car"], k=3)
    assert top[0][0].path == str(planted.resolve()) and top[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert top[0][1].score < top[0][0].score
    copy = tmp_path / "query.png"  # the same picture elsewhere: its nearest indexed file is the original
    shutil.copyfile(folder / "p2.png", copy)
    best = index.query_images([copy], k=2)[0]
    assert best[0].path == str((folder / "p2.png").resolve()) and best[0].score == pytest.approx(1.0, abs=1e-5)
    assert index.add(sorted(folder.rglob("*.png"))) == 0


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.paths, self.images, self.links, self.headings, self._in_h2 = [], [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.paths.append(attrs["data-path"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def test_html_page_and_contact_sheet(home, run, folder, tmp_path, capsys):
    page, sheet = tmp_path / "out" / "results.html", tmp_path / "out" / "sheet.png"
    queries = ["czerwony samochód", "kırmızı bir araba"]
    blocks = search(capsys, run, "--images", folder, *queries, "--image", folder / "p4.png", "-k", "4",
                    "--html", page, "--sheet", sheet)
    hits = [h["path"] for b in blocks for h in b["hits"]]
    assert len(blocks) == 3 and len(hits) == 12
    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    parsed.close()
    assert parsed.paths == hits  # every result, in order
    assert parsed.links == [f"file://{p}" for p in hits]
    assert all(src.startswith("data:image/jpeg;base64,") for src in parsed.images) and len(parsed.images) == 12
    assert parsed.headings[:2] == queries
    with Image.open(sheet) as im:
        assert im.size == contact_sheet_size(3, 4)


def test_search_errors(run, folder, tmp_path, capsys):
    assert mlilt_main(["search", str(run), "--images", str(folder)]) == 2
    assert "at least one text QUERY or --image" in capsys.readouterr().err
    assert mlilt_main(["search", str(run), "--images", str(tmp_path / "nowhere"), "q"]) == 2
    assert "nowhere: not a directory of images" in capsys.readouterr().err
