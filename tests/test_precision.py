"""`precision="auto"` follows the hardware, and every result and report says what was used."""

import json

import pytest
import torch
from PIL import Image

from conftest import mlilt_eval
from mlilt import build_model
from mlilt.evaluation.harness import EncodeOptions
from mlilt.report import build_report, load_results, render_markdown


@pytest.fixture
def manifest(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    rows = []
    for i in range(4):
        Image.new("RGB", (6, 6), (60 * i, 20, 200 - 40 * i)).save(folder / f"{i}.png")
        rows += [{"image": f"{i}.png", "caption": f"a red cat {i}", "lang": "en"},
                 {"image": f"{i}.png", "caption": f"a blue dog {i}", "lang": "de"}]
    (folder / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder / "pairs.jsonl"


def test_auto_picks_bf16_only_where_the_cpu_has_it(cpu_bf16):
    assert EncodeOptions(device="cpu").resolved_precision() == ("bf16" if cpu_bf16 else "fp32")
    assert EncodeOptions(device="cpu", precision="fp32").resolved_precision() == "fp32"


def test_result_and_report_record_precision_and_device(tmp_path, tiny_model_config, manifest, cpu_bf16, monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    torch.manual_seed(0)
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    out = tmp_path / "result.json"
    assert mlilt_eval(run, "--eval-set", manifest, "--device", "cpu", "--out", out, "--workers", "0", "--quiet") == 0
    settings = json.loads(out.read_text())["settings"]
    expected = "bf16" if cpu_bf16 else "fp32"
    assert settings["precision"] == expected and settings["native_bf16"] is cpu_bf16
    assert settings["device"] == "cpu" and settings["device_name"]
    markdown = render_markdown(build_report(load_results([out])))
    assert f"| {expected} | cpu ({settings['device_name']}) |" in markdown
