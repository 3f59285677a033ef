"""The study recipe on tiny towers and a handful of emoji: every epoch's checkpoint scored, finished runs and
evaluations reused, and the report's slope the least-squares fit of its per-language points."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from helpers_train import recipe_config, write_yaml
from test_emoji_xtd_v2 import build_handful

REPO = Path(__file__).resolve().parents[1]
# English and five others of unlike CC-100 sizes: a slope needs three points or more.
LANGS = ["en", "de", "fr", "es", "ja", "sw"]
BATCH = 16


def load_study():
    spec = importlib.util.spec_from_file_location("emoji_xtd_study", REPO / "recipes" / "emoji_xtd_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_rates_come_from_the_tables_choice_and_lr_flags(tmp_path):
    study = load_study()
    (tmp_path / "lr_selection.json").write_text(json.dumps({"lilt_lwa": {"lr": 1e-3}, "clip": {"lr": 3e-4}}))
    args = argparse.Namespace(table_runs_dir=str(tmp_path), lr="clip=1e-4")
    assert study.learning_rates(args, ["lilt_lwa", "clip"]) == {"lilt_lwa": 1e-3, "clip": 1e-4}
    with pytest.raises(SystemExit, match="no learning rate for lilt_lora.*lilt_lwa=1e-3,lilt_lora=1e-3,clip=3e-4"):
        study.learning_rates(args, ["lilt_lora"])
    args.lr = "clip:1e-4"
    with pytest.raises(SystemExit, match="expected STRATEGY=RATE.*'clip:1e-4'"):
        study.learning_rates(args, ["clip"])


def test_every_epoch_is_scored_runs_are_reused_and_the_slope_is_a_least_squares_fit(tmp_path, tiny_model_config,
                                                                                     monkeypatch):
    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    data = build_handful(tmp_path / "data")
    config = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), data / "train.jsonl",
                                                              batch_size=BATCH, warmup_steps=0, save_every=1000))
    runs, out = tmp_path / "runs", tmp_path / "report" / "languages"
    argv = ["--strategies", "frozen,lilt_lwa,lilt_lora,clip", "--lr", "lilt_lwa=1e-3,lilt_lora=1e-3,clip=3e-4",
            "--seeds", "0", "--epochs", "2", "--langs", ",".join(LANGS), "--config", str(config),
            "--data-dir", str(data), "--runs-dir", str(runs), "--out", str(out), "--workers", "0",
            "--table-runs-dir", str(tmp_path / "no-table")]
    study = load_study()
    assert study.main(argv) == 0

    per_epoch = len((data / "train.jsonl").read_text().splitlines()) // BATCH
    for run in ("lilt_lwa-lr0.001-s0", "lilt_lora-lr0.001-s0", "clip-lr0.0003-s0"):
        trained = yaml_of(runs / run / "config.yaml")
        assert (trained["positives"], trained["epochs"]) == ("group", 2)
        scored = {json.loads(p.read_text())["run"]["step"]: p for p in (runs / run / "eval").glob("*_step*.json")}
        assert sorted(scored) == [per_epoch, 2 * per_epoch]  # one result per epoch: the checkpoint, the final model
        for step, path in scored.items():
            result = json.loads(path.read_text())
            assert set(result["results"]) == set(LANGS) and set(result["text_probe"]) == set(LANGS[1:])
            assert result["run"]["checkpoint"] == ("model" if step == 2 * per_epoch
                                                   else f"checkpoints/step_{per_epoch:08d}")
            assert result["run"]["epoch"] == step // per_epoch
            assert result["run"]["training"] == {"lr": trained["lr"], "positives": "group", "epochs": 2,
                                                 "batch_size": BATCH, "mixed_precision": trained["mixed_precision"]}

    # A second invocation trains and evaluates nothing, and still writes the report; both are in the ledger.
    import mlilt.evaluation.harness
    import mlilt.train.loop

    monkeypatch.setattr(mlilt.train.loop, "train", lambda config: pytest.fail("trained again"))
    monkeypatch.setattr(mlilt.evaluation.harness, "evaluate_retrieval", lambda *a, **k: pytest.fail("evaluated again"))
    out.with_suffix(".md").unlink()
    assert study.main(argv) == 0
    ledger = [json.loads(line) for line in (runs / "invocations.jsonl").read_text().splitlines()]
    assert [e["finished"] for e in ledger] == [True, True]

    # The report's slopes of Δ against CC-100 size and against the untrained tower's text probe are numpy's
    # least-squares lines through the CSV's per-language points.
    md = out.with_suffix(".md").read_text()
    csv = pd.read_csv(out.with_suffix(".csv"), comment="#")
    facts = json.loads((runs / "frozen-s0" / "eval" / "emoji-xtd_all.json").read_text())["languages"]
    untrained = csv[(csv.table == "text_probe") & (csv.kind == "run") & (csv.strategy == "frozen")].iloc[0]
    number = r"([-+][0-9.]+)"
    for row in ("lilt_lwa-lr0.001-s0", "lilt_lora-lr0.001-s0"):
        delta = csv[(csv.table == "retrieval") & (csv.kind == "delta") & (csv.run == row)].iloc[0]
        y = [delta[f"{lang} mean"] for lang in LANGS[1:]]
        on_size = np.polyfit([math.log10(facts[lang]["cc100_gib"]) for lang in LANGS[1:]], y, 1)[0]
        on_probe = np.polyfit([untrained[f"{lang} en->x@1"] for lang in LANGS[1:]], y, 1)[0]
        cells = re.search(rf"^\| {re.escape(row)} \| {number} \| \[{number}, {number}\] \| 5 \| {number} \| "
                          rf"\[{number}, {number}\] \| 5 \|", md, re.M)
        assert cells, f"no slope row for {row}"
        assert float(cells[1]) == pytest.approx(on_size, abs=6e-4)
        assert float(cells[2]) < float(cells[1]) < float(cells[3])
        assert float(cells[4]) == pytest.approx(on_probe, abs=6e-5)
    assert "| frozen (untrained) |" not in md[md.index("## Slopes"):md.index("## Paired")]  # no Δ of its own
    assert "positives group" in md and "over all 2 invocations" in md

    # One table of the paired Δ per tier: with one seed, a column's Δ is the mean of its languages' Δ in the CSV.
    section = md[md.index("## Paired Δ to clip-lr0.0003-s0 after the last epoch, per resource tier"):]
    header = next(line for line in section.splitlines() if line.startswith("| row |")).strip("| ").split(" | ")
    row = next(line for line in section.splitlines() if line.startswith("| lilt_lwa-lr0.001-s0 |"))
    cells = dict(zip(header, row.strip("| ").split(" | ")))
    lwa_delta = csv[(csv.table == "retrieval") & (csv.kind == "delta") & (csv.run == "lilt_lwa-lr0.001-s0")].iloc[0]
    unseen = np.mean([lwa_delta[f"{lang} mean"] for lang in LANGS[1:]])
    assert float(cells["non-en"].split()[0]) == pytest.approx(unseen, abs=0.05)
    assert cells[f"tier {facts['sw']['tier']}"] == f"{lwa_delta['sw mean']:+.1f} [–, –]"  # Swahili alone: n = 1

    # The paired Δ at every epoch: with one seed, the difference of the two rows' curves at that step.
    section = md[md.index("## Paired Δ to clip-lr0.0003-s0 at every epoch"):]
    curves = csv[csv.table == "steps"]
    for epoch in (1, 2):
        row = next(line for line in section.splitlines() if line.startswith(f"| lilt_lwa-lr0.001-s0 | {epoch} ("))
        cell = row.strip("| ").split(" | ")[2]
        at = {name: curves[(curves.config == name) & (curves.step == epoch * per_epoch)].iloc[0]
              for name in ("lilt_lwa-lr0.001-s0", "clip-lr0.0003-s0")}
        unseen = "recall mean (non-en) mean"
        expected = at["lilt_lwa-lr0.001-s0"][unseen] - at["clip-lr0.0003-s0"][unseen]
        assert float(cell.split()[0]) == pytest.approx(expected, abs=0.05)
    assert md.index("## Slopes") < md.index("## Provenance")

    # A row per language with each row's recall, its Δ to clip (one seed: no interval) and every row's probe.
    section = md[md.index("## Per language after the last epoch"):]
    sw = next(line for line in section.splitlines() if line.startswith("| sw |")).split(" | ")
    lwa = csv[(csv.table == "retrieval") & (csv.kind == "run") & (csv.run == "lilt_lwa-lr0.001-s0")].iloc[0]
    lwa_delta = csv[(csv.table == "retrieval") & (csv.kind == "delta") & (csv.run == "lilt_lwa-lr0.001-s0")].iloc[0]
    assert sw[1:4] == ["Swahili", f"{facts['sw']['cc100_gib']:.2f}", str(facts["sw"]["tier"])]
    assert f"{lwa['sw mean']:.1f}" in sw and f"{lwa_delta['sw mean']:+.1f} [–, –]" in sw
    assert sw[-1] == f"{untrained['sw en->x@1']:.1f} |"

    # The curves follow English, the other languages, the low-resource tiers (Swahili alone here) and the probe.
    steps = csv[csv.table == "steps"]
    assert facts["sw"]["tier"] <= 2 < min(facts[lang]["tier"] for lang in LANGS if lang != "sw")
    lowest = "low resource (tiers 0-2)"
    assert {"recall en mean", "recall mean (non-en) mean", f"recall {lowest} mean",
            "text probe mean (non-en) en->x@1"} <= set(steps.columns)
    final = steps[(steps.config == "lilt_lwa-lr0.001-s0") & (steps.step == 2 * per_epoch)].iloc[0]
    assert final[f"recall {lowest} mean"] == pytest.approx(lwa["sw mean"])
    for chart in (".steps.png", ".untrained_probe.png"):
        assert out.with_name(out.name + chart).is_file()
    with Image.open(out.with_name(out.name + ".steps.png")) as im:
        assert f"x: epoch ({per_epoch} steps each)" in im.text["Description"]


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
