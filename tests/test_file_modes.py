"""Files mlilt writes for others to read (export, search --html/--sheet) get the usual mode, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from PIL import Image

from mlilt.cli import main as mlilt_main
from mlilt.model import build_model


@pytest.fixture
def run_and_photos(tmp_path, tiny_model_config, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    build_model(tiny_model_config("lilt_lwa")).save_trained(tmp_path / "run" / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.effect_noise((24, 24), 30 + 10 * i).convert("RGB").save(photos / f"p{i}.png")
    return tmp_path / "run", photos


@pytest.fixture
def umask():
    """The usual umask, 022, whatever the test runner's is."""
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_export_and_search_outputs_follow_the_umask(umask, run_and_photos, tmp_path):
    run, photos = run_and_photos
    expected = 0o666 & ~umask  # 0644 under the usual umask 022
    out = tmp_path / "export"
    assert mlilt_main(["export", str(run), str(out)]) == 0
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["README.md", "model_config.json", "trained.safetensors"]
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}
    assert "\n# run\n" in (out / "README.md").read_text()  # no --repo-id: the card is titled by the run's name
    page, sheet = tmp_path / "results.html", tmp_path / "sheet.png"
    assert mlilt_main(["search", str(run), "--images", str(photos), "a red car", "-k", "2", "--html", str(page),
                       "--sheet", str(sheet), "--precision", "fp32", "--workers", "0", "--quiet"]) == 0
    assert (_mode(page), _mode(sheet)) == (expected, expected)
    assert _mode(run / "model" / "trained.safetensors") == expected  # save_trained writes through the same helper


def test_atomic_write_honours_a_stricter_umask(tmp_path):
    from mlilt.model import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == 0o640
