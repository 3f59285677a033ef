"""The table recipe: learning rates chosen on validation concepts without a look at the test files; its report pieces."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from helpers_train import recipe_config, write_yaml
from test_emoji_xtd_v2 import build_handful
from test_report import result, write

from mlilt import report as rp

REPO = Path(__file__).resolve().parents[1]


def load_recipe():
    spec = importlib.util.spec_from_file_location("emoji_xtd_table", REPO / "recipes" / "emoji_xtd_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Every file opened while the flag is up; an audit hook sees builtins.open, io.open, os.open and pathlib alike.
_OPENED: list[str] = []
_WATCH = [False]


def _audit(event: str, args) -> None:
    if _WATCH[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


def test_lr_selection_never_reads_the_test_files(tmp_path, tiny_model_config, monkeypatch):
    from mlilt.evaluation.harness import EncodeOptions
    from mlilt.evaluation.sets import load_eval_set

    monkeypatch.setenv("MLILT_HOME", str(tmp_path / "home"))
    data = build_handful(tmp_path / "data")
    sentinel = "SENTINEL-TEST-CAPTION"
    test_files = [data / "test_image_names.txt", *data.glob("test_1kcaptions_*.txt")]
    for path in test_files:  # same line counts, poisoned content: were it parsed, it would show
        path.write_text("".join(f"{sentinel} {i}\n" for i in range(len(path.read_text().splitlines()))))
    config = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("projection_only"),
                                                              data / "train.jsonl", max_steps=1, warmup_steps=0))
    table = load_recipe()
    monkeypatch.setattr(table, "EDGE_STEPS", 0)  # a two-rate grid always has its winner at an edge
    args = argparse.Namespace(config=str(config), epochs=None, max_steps=1, data_dir=str(data),
                              runs_dir=str(tmp_path / "runs"))
    val_set = load_eval_set("emoji-xtd-val", data_dir=data)
    opts = EncodeOptions(precision="fp32", workers=0, progress=False, cache=False)

    _OPENED.clear()
    _WATCH[0] = True
    try:
        chosen = table.choose_learning_rates(args, ["projection_only"], [1e-4, 1e-3], 0, val_set, opts)
    finally:
        _WATCH[0] = False
    assert any(p.endswith("val_captions_en.txt") for p in _OPENED)  # the hook does see the reads
    assert not [p for p in _OPENED if Path(p).name.startswith("test_") and Path(p).parent == data]
    scores = chosen["projection_only"]["validation"]
    assert set(scores) == {"0.0001", "0.001"} and chosen["projection_only"]["lr"] in (1e-4, 1e-3)
    assert chosen["projection_only"]["lr"] == max(sorted([1e-4, 1e-3]), key=lambda lr: scores[f"{lr:g}"])
    for lr in ("0.0001", "0.001"):
        saved = json.loads((tmp_path / "runs" / f"projection_only-lr{lr}-s0" / "eval" /
                            "emoji-xtd-val_all.json").read_text())
        assert saved["results"]["en"]["mean"] == pytest.approx(scores[lr], abs=1e-3)
        assert set(saved["results"]) == {"en"} and "text_probe" not in saved

    # finished runs are reused, not trained again; a finished run with other settings is refused
    import mlilt.evaluation.harness
    import mlilt.train.loop

    monkeypatch.setattr(mlilt.train.loop, "train", lambda config: pytest.fail("trained again"))
    monkeypatch.setattr(mlilt.evaluation.harness, "evaluate_retrieval", lambda *a, **k: pytest.fail("evaluated again"))
    assert table.choose_learning_rates(args, ["projection_only"], [1e-4, 1e-3], 0, val_set, opts) == chosen
    args.max_steps = 2
    with pytest.raises(SystemExit, match="max_steps: 1 there, 2 asked"):
        table.ensure_trained(table.train_overrides(args, "projection_only", 1e-4, 0))


@pytest.mark.parametrize("peak, tried, chosen", [
    (3e-4, [1e-4, 3e-4, 1e-3], 3e-4),  # inside the grid: nothing added
    (3e-3, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 3e-3),  # past the top edge: found, and its neighbour is worse
    (1, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 1e-2),  # still rising: stops after EDGE_STEPS
    (3e-5, [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], 3e-5),  # the bottom edge grows downwards
])
def test_lr_grid_grows_past_the_edge_where_the_best_rate_sits(monkeypatch, peak, tried, chosen):
    table = load_recipe()
    assert table.EDGE_STEPS == 2
    trained = []
    monkeypatch.setattr(table, "ensure_trained", lambda flags: trained.append(float(flags[flags.index("--lr") + 1])))
    monkeypatch.setattr(table, "validation_score", lambda run_dir, val_set, opts: -abs(math.log10(trained[-1] / peak)))
    args = argparse.Namespace(config="c.yaml", epochs=None, max_steps=None, data_dir=None, runs_dir="runs/t")
    selection = table.choose_learning_rates(args, ["lilt_ln"], [1e-4, 3e-4, 1e-3], 0, None, None)["lilt_ln"]
    assert sorted(trained) == tried and selection["lr"] == chosen
    assert list(selection["validation"]) == [f"{lr:g}" for lr in tried]


def test_every_table_run_trains_on_v2_whatever_the_config_names():
    """Whatever the base config names, the table trains on v2's split (its validation concepts held out)."""
    table = load_recipe()
    args = argparse.Namespace(config=str(REPO / "recipes" / "configs" / "emoji_xtd_v1.yaml"), epochs=None,
                              max_steps=None, data_dir=None, runs_dir="runs/t")
    from mlilt.train.config import parse_args as parse_train_args

    config = parse_train_args(table.train_overrides(args, "lilt_ln", 3e-4, 1))
    assert (config.train_data, config.lr, config.seed, config.model.strategy) == ("emoji-xtd", 3e-4, 1, "lilt_ln")
    args.data_dir = "/some/build"
    assert parse_train_args(table.train_overrides(args, "lilt_ln", 3e-4, 1)).train_data == "/some/build/train.jsonl"


def test_paired_differences_over_seeds_and_languages(tmp_path):
    from scipy import stats

    gaps = {0: {"en": 2.0, "de": -1.0, "sw": 0.5}, 1: {"en": 3.0, "de": 1.0, "sw": -0.5}}
    paths = []
    for seed in (0, 1):
        clip = {lang: 40.0 + seed for lang in gaps[seed]}
        paths.append(write(tmp_path, f"clip{seed}.json", result(f"clip-s{seed}", "clip", seed, clip)))
        lwa = {lang: clip[lang] + gaps[seed][lang] for lang in clip}
        paths.append(write(tmp_path, f"lwa{seed}.json", result(f"lwa-s{seed}", "lilt_lwa", seed, lwa)))
    frame = rp.paired_differences(rp.load_results(paths), "clip")
    diffs = [d for seed in gaps.values() for d in seed.values()]
    mean = sum(diffs) / 6
    half = stats.t.ppf(0.975, 5) * stats.tstd(diffs) / math.sqrt(6)
    row = frame.loc["lilt_lwa"]
    # a per-language "mean" of TR/IR@1/5/10 shifts with TR@1 in the synthetic recalls(): same differences
    assert (row["seeds"], row["languages"], row["n"]) == (2, 3, 6)
    assert row["delta"] == pytest.approx(mean) and row["ci_low"] == pytest.approx(mean - half)
    assert row["ci_high"] == pytest.approx(mean + half)
    non_en = rp.paired_differences(rp.load_results(paths), "clip", languages=["de", "sw"]).loc["lilt_lwa"]
    assert non_en["n"] == 4 and non_en["delta"] == pytest.approx(0.0)
    assert "clip" not in frame.index
    md = "\n".join(rp.render_paired_markdown(frame, "clip", "mean recall"))
    assert "2 × 3 = 6" in md and f"{mean:+.1f}" in md


def test_strategy_chart_and_style_view(tmp_path):
    from PIL import Image

    parts = {style: {"num_images": 10, "results": {"en": _r(v), "de": _r(v - 5)}} for style, v in
             (("noto", 30.0), ("twemoji", 20.0), ("openmoji", 10.0))}
    paths = [write(tmp_path, f"{s}{seed}.json", result(f"{s}-s{seed}", s, seed, {"en": 20.0 + seed, "de": 15.0},
                                                       protocol="all", protocols=parts,
                                                       averaged_over=list(parts)))
             for s in ("clip", "lilt_lwa") for seed in (0, 1)]
    files = rp.load_results(paths)
    report = rp.build_report(files, baseline="clip", metric="mean")
    rp.plot_strategy_summary(report.table("retrieval"), tmp_path / "chart.png", title="t")
    with Image.open(tmp_path / "chart.png") as im:
        assert im.size[0] > 500
    noto = rp.protocol_view(files, "noto")
    assert [f.results["en"]["TR@1"] for f in noto] == [30.0] * 4 and noto[0].data["protocol"] == "noto"
    assert rp.build_report(noto, metric="mean").protocol == "noto"
    with pytest.raises(rp.ResultFileError, match="protocols.nope"):
        rp.protocol_view(files, "nope")


def _r(tr1: float) -> dict:
    from test_report import recalls

    return recalls(tr1)


def test_wall_clock_counts_parallel_invocations_once_and_gaps_not_at_all():
    """Two invocations side by side for an hour, then one of ten minutes a day later: 70 minutes, not 130."""
    table = load_recipe()
    records = [{"started": "2026-12-01T10:00:00+0000", "minutes": 60},
               {"started": "2026-12-01T11:00:00+0100", "minutes": 60},  # the same start in another time zone
               {"started": "2026-12-01T10:20:00+0000", "minutes": 10},  # inside the first
               {"started": "2026-12-02T10:00:00+0000", "minutes": 10}]
    assert table.wall_clock_minutes(records) == pytest.approx(70)
    assert table.wall_clock_minutes(records[:2] + [{"started": "2026-12-01T10:50:00+0000", "minutes": 20}]) \
        == pytest.approx(70)  # overlapping the end extends the span
    assert table.wall_clock_minutes([]) == 0


def test_every_invocation_is_recorded_even_one_that_fails(tmp_path):
    """A table that spans sessions adds up its invocations' wall time; a killed or failed one still counts."""
    table = load_recipe()
    with table.invocation_ledger(tmp_path) as (earlier, this):
        assert earlier == []
        this["finished"] = True
    with pytest.raises(RuntimeError):
        with table.invocation_ledger(tmp_path) as (earlier, this):
            assert [e["finished"] for e in earlier] == [True]
            raise RuntimeError("killed half-way")
    with table.invocation_ledger(tmp_path) as (earlier, this):
        assert [e["finished"] for e in earlier] == [True, False]
        assert all(e["minutes"] >= 0 and e["started"] for e in earlier)
    lines = (tmp_path / table.INVOCATIONS).read_text().splitlines()
    assert [json.loads(line)["finished"] for line in lines] == [True, False, False]
