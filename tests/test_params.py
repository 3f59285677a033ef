"""Paper-exact parameter accounting (LilT Table 1 "% Trained" and Table 3 counts), architecture only."""

import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from mlilt import cli

BERT_BASE = str(Path(__file__).resolve().parents[1] / "recipes/configs/architectures/bert-base-uncased.json")

# Table 1, "% Trained" (rows a-l, o, p); row j (lilt_lwa_bitfit) and m, n are not printed in the paper.
PAPER_PERCENT = {"frozen": 0.00, "ln_only": 0.04, "projection_only": 0.20, "lilt_ln": 0.24,
                 "lilt_bitfit": 0.31, "lilt_da_no_ln": 6.96, "lilt_da": 6.99, "lilt_lwa_no_ln": 6.97,
                 "lilt_lwa": 7.01, "lilt_da_bitfit": 7.06, "lit": 56.01, "lit_lilt_lwa": 57.57, "clip": 100.0}


@pytest.fixture(scope="module")
def rows():
    out = StringIO()
    with redirect_stdout(out):
        assert cli.main(["params", "--text", BERT_BASE, "--vision", "deit_base_patch16_224",
                         "--img-size", "256", "--embed-dim", "256", "--no-pretrained", "--json"]) == 0
    return {r["strategy"]: r for r in json.loads(out.getvalue())}


@pytest.mark.parametrize("strategy,percent", sorted(PAPER_PERCENT.items()))
def test_percent_trained_matches_paper_table1(rows, strategy, percent):
    assert rows[strategy]["percent_trainable"] == pytest.approx(percent, abs=0.02)


@pytest.mark.parametrize("strategy,key,millions", [
    ("lilt_da", "trainable", 14.65), ("lilt_lwa", "trainable", 14.67),
    ("lit", "trainable", 109.28), ("clip", "total", 195.13)])
def test_counts_match_paper_table3(rows, strategy, key, millions):
    assert rows[strategy][key] / 1e6 == pytest.approx(millions, abs=0.01)


def test_every_preset_is_listed_with_required_keys(rows):
    from mlilt import PRESETS

    assert list(rows) == list(PRESETS)
    for r in rows.values():
        assert {"strategy", "total", "trainable", "percent_trainable"} <= set(r)
        assert r["percent_trainable"] == pytest.approx(100 * r["trainable"] / r["total"], abs=1e-3)


def test_one_strategy_table_output(capsys):
    assert cli.main(["params", "--text", BERT_BASE, "--vision", "deit_base_patch16_224", "--img-size", "256",
                     "--no-pretrained", "--strategy", "lilt_lwa"]) == 0
    out = capsys.readouterr().out
    assert "lilt_lwa" in out and "7.01" in out and "clip" not in out


def test_unknown_strategy_is_a_clear_error(capsys):
    assert cli.main(["params", "--text", BERT_BASE, "--vision", "deit_base_patch16_224",
                     "--no-pretrained", "--strategy", "lora"]) == 2
    assert "unknown strategy 'lora'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--text", "nope.json", "--vision", "deit_base_patch16_224"],
     "mlilt params: error: --text: nope.json: no such file or directory; expected a model directory"),
    (["--text", "./models/mbert", "--vision", "deit_base_patch16_224"],
     "mlilt params: error: --text: ./models/mbert: no such file or directory"),
    (["--text", BERT_BASE, "--vision", "deit_bse_patch16_224"],
     "mlilt params: error: --vision: 'deit_bse_patch16_224' is not a timm model; did you mean deit_base_patch16_224"),
])
def test_bad_tower_names_give_one_line_naming_the_flag(argv, message, capsys):
    assert cli.main(["params", *argv, "--no-pretrained"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_bad_tower_names_in_a_training_config_name_the_field():
    from mlilt.train.config import parse_args

    config = parse_args(["--train_data", "x.jsonl", "--model.vision.name", "efficientnet_lite9"])
    with pytest.raises(ValueError, match=r"^config field model\.vision\.name: 'efficientnet_lite9' is not a timm "
                                         r"model; did you mean efficientnet_lite\d"):
        config.validate()
    config = parse_args(["--train_data", "x.jsonl", "--model.text.name_or_path", "configs/mbert.json"])
    with pytest.raises(ValueError, match=r"^config field model\.text\.name_or_path: configs/mbert\.json: no such"):
        config.validate()
