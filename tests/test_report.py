"""mlilt report: tables from synthetic result files written into tmp_path, following the result schema."""

from __future__ import annotations

import argparse
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlilt import report as rp

LANGS = ["en", "de", "sw"]  # "sw" is not in any eval set of the repo: new languages need no code change


def recalls(base: float) -> dict:
    """A schema-complete results entry whose TR@1 is ``base`` and IR@1 is ``base - 10``."""
    r = {"TR@1": base, "TR@5": base + 5, "TR@10": base + 8, "IR@1": base - 10, "IR@5": base - 4, "IR@10": base - 1}
    r["mean"] = sum(r.values()) / 6
    return r


def result(name: str = "lwa-s0", strategy: str = "lilt_lwa", seed: int | None = 0, tr1: dict | None = None,
           percent: float = 7.01, probe: dict | None = None, eval_set: str = "emoji-xtd", protocol: str = "test",
           **extra) -> dict:
    """A result JSON object of `mlilt eval` (schema of the shared context)."""
    tr1 = tr1 or {lang: 50.0 for lang in LANGS}
    data = {
        "mlilt_version": "0.1.0", "task": "retrieval", "created": "2026-01-01T00:00:00+00:00",
        "run": {"path": f"runs/{name}", "name": name, "checkpoint": "model", "strategy": strategy,
                "resolved_strategy": {"name": strategy}, "text_model": "tiny-bert", "vision_model": "tiny-vit",
                "total": 1000, "trainable": int(percent * 10), "percent_trainable": percent, "seed": seed,
                "train_data": "data/train.jsonl"},
        "eval_set": eval_set, "protocol": protocol, "num_images": 500,
        "leakage": {"overlap": 0, "excluded": False},
        "results": {lang: recalls(v) for lang, v in tr1.items()},
        "timings": {"image_encoding_s": 1.0, "text_encoding_s": 1.0},
    }
    if probe is not None:
        data["text_probe"] = {lang: {"en->x@1": v, "x->en@1": v - 2} for lang, v in probe.items()}
    data.update(extra)
    return data


def write(tmp_path: Path, filename: str, data: dict) -> Path:
    path = tmp_path / filename
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def build(paths, **kwargs) -> rp.Report:
    return rp.build_report(rp.load_results(paths), **kwargs)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlilt")
    rp.add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_invented_language_gets_columns_and_means(tmp_path):
    path = write(tmp_path, "a.json", result(tr1={"en": 60.0, "de": 40.0, "xx": 30.0}))
    t = build([path]).table("retrieval")
    assert t.languages == ["en", "de", "xx"]
    assert ("xx", "TR@1") in t.mean.columns and ("xx", "IR@1") in t.mean.columns
    assert t.mean.at["lwa-s0", ("xx", "TR@1")] == 30.0
    assert t.mean.at["lwa-s0", ("xx", "IR@1")] == 20.0
    # Mean over all languages, and over the languages not trained on (English left out).
    assert t.mean.at["lwa-s0", ("mean (all)", "TR@1")] == pytest.approx((60 + 40 + 30) / 3)
    assert t.mean.at["lwa-s0", ("mean (non-en)", "TR@1")] == pytest.approx((40 + 30) / 2)
    assert t.mean_languages == {"mean (all)": ["en", "de", "xx"], "mean (non-en)": ["de", "xx"]}


def test_two_seeds_give_mean_and_sample_std(tmp_path):
    a = write(tmp_path, "s0.json", result(name="lwa-s0", seed=0, tr1={"en": 60.0, "de": 40.0, "sw": 30.0}))
    b = write(tmp_path, "s1.json", result(name="lwa-s1", seed=1, tr1={"en": 64.0, "de": 46.0, "sw": 31.0}))
    rep = build([a, b])
    t = rep.table("retrieval")
    assert list(t.mean.index) == ["lilt_lwa"]  # run names differ per seed: the row is named by its strategy
    assert t.rows.at["lilt_lwa", "n"] == 2
    assert t.rows.at["lilt_lwa", "seeds"] == [0, 1]
    assert t.mean.at["lilt_lwa", ("de", "TR@1")] == pytest.approx(43.0)
    assert t.std.at["lilt_lwa", ("de", "TR@1")] == pytest.approx(math.sqrt(((40 - 43) ** 2 + (46 - 43) ** 2) / 1))
    assert t.std.at["lilt_lwa", ("en", "IR@1")] == pytest.approx(math.sqrt(8))  # 50, 54 -> sample std (n-1)
    # The mean columns' std is over the per-seed means, not a pooled std of cells.
    per_seed = [(40 + 30) / 2, (46 + 31) / 2]
    assert t.std.at["lilt_lwa", ("mean (non-en)", "TR@1")] == pytest.approx(pd.Series(per_seed).std())
    md = rp.render_markdown(rep)
    assert "43.0 ± 4.2" in md and "| 2 |" in md


def test_namesake_rows_are_told_apart_by_what_differs(tmp_path):
    """Two LoRA ranks on the same towers: the rows say how much each trains, not which towers both use."""
    rank = [write(tmp_path, f"r{p}-s{s}.json", result(name=f"lora-r{p}-s{s}", strategy="lilt_lora", seed=s, percent=p))
            for p in (2.61, 4.16) for s in (0, 1)]
    assert list(build(rank).table("retrieval").mean.index) == ["lilt_lora (2.61 % trained)",
                                                               "lilt_lora (4.16 % trained)"]
    rows = [write(tmp_path, f"lwa-s{s}.json", result(name=f"lwa-s{s}", seed=s)) for s in (0, 1)]
    for s in (0, 1):
        other_towers = result(name=f"x-s{s}", seed=s)
        other_towers["run"]["text_model"] = "other-bert"
        rows.append(write(tmp_path, f"x-s{s}.json", other_towers))
    assert list(build(rows).table("retrieval").mean.index) == ["lilt_lwa (tiny-bert + tiny-vit)",
                                                               "lilt_lwa (other-bert + tiny-vit)"]


def test_delta_rows_against_baseline(tmp_path):
    clip = write(tmp_path, "clip.json", result(name="clip-run", strategy="clip", percent=100.0,
                                               tr1={"en": 70.0, "de": 30.0, "sw": 20.0}))
    lwa = write(tmp_path, "lwa.json", result(name="lwa-run", strategy="lilt_lwa", percent=7.01,
                                             tr1={"en": 60.0, "de": 45.0, "sw": 35.0}))
    ln = write(tmp_path, "ln.json", result(name="ln-run", strategy="lilt_ln", percent=0.24,
                                           tr1={"en": 50.0, "de": 40.0, "sw": 10.0}))
    for baseline in ("clip", "clip-run"):  # by strategy or by run name
        t = build([clip, lwa, ln], baseline=baseline).table("retrieval")
        assert list(t.delta.index) == ["lwa-run", "ln-run"]
        assert t.delta.at["lwa-run", ("de", "TR@1")] == pytest.approx(15.0)
        assert t.delta.at["lwa-run", ("en", "IR@1")] == pytest.approx(-10.0)
        assert t.delta.at["ln-run", ("sw", "TR@1")] == pytest.approx(-10.0)
        assert t.delta.at["lwa-run", ("mean (non-en)", "TR@1")] == pytest.approx((45 + 35) / 2 - (30 + 20) / 2)
    md = rp.render_markdown(build([clip, lwa, ln], baseline="clip"))
    assert "Δ lwa-run − clip-run" in md and "+15.0" in md
    with pytest.raises(rp.ResultFileError, match="matches no run name or strategy"):
        build([clip, lwa], baseline="lit")


def test_probe_mean_leaves_english_out_and_cli_prints_markdown(tmp_path, capsys):
    path = write(tmp_path, "a.json", result(tr1={"en": 60.0, "xx": 40.0}, probe={"en": 100.0, "de": 80.0, "xx": 60.0}))
    t = build([path]).table("text_probe")
    assert t.mean_languages == {"mean (non-en)": ["de", "xx"]}
    assert t.mean.at["lwa-s0", ("mean (non-en)", "en->x@1")] == pytest.approx(70.0)
    assert run_cli(["report", str(path), "--metric", "R@10"]) == 0  # no --out: Markdown on stdout
    printed = capsys.readouterr().out
    assert "| xx TR@10 | xx IR@10 |" in printed and "not every file" not in printed


def test_metric_selects_recall_level(tmp_path):
    path = write(tmp_path, "a.json", result(tr1={"en": 60.0, "de": 40.0}))
    t5 = build([path], metric="R@5").table("retrieval")
    assert list(t5.mean.columns.get_level_values("metric").unique()) == ["TR@5", "IR@5"]
    assert t5.mean.at["lwa-s0", ("de", "IR@5")] == 36.0
    tm = build([path], metric="mean").table("retrieval")
    assert tm.mean.at["lwa-s0", ("de", "mean")] == pytest.approx(recalls(40.0)["mean"])


def test_cli_writes_all_outputs_and_csv_parses_back(tmp_path):
    files = [write(tmp_path, "clip.json", result(name="clip-run", strategy="clip", percent=100.0,
                                                 tr1={"en": 70.0, "de": 30.0, "sw": 20.0},
                                                 probe={"de": 80.0, "sw": 60.0})),
             write(tmp_path, "s0.json", result(name="lwa-s0", seed=0, tr1={"en": 60.0, "de": 40.0, "sw": 30.0},
                                               probe={"de": 90.0, "sw": 70.0})),
             write(tmp_path, "s1.json", result(name="lwa-s1", seed=1, tr1={"en": 64.0, "de": 46.0, "sw": 31.0},
                                               probe={"de": 92.0, "sw": 74.0}))]
    out = tmp_path / "reports" / "xtd"
    assert run_cli(["report", *map(str, files), "--baseline", "clip", "--out", str(out)]) == 0
    for suffix in (".md", ".csv", ".tex", ".png", ".text_probe.png"):
        assert (out.parent / f"xtd{suffix}").stat().st_size > 0, suffix
    assert (out.parent / "xtd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    csv = pd.read_csv(out.with_suffix(".csv"), comment="#")
    runs = csv[(csv.table == "retrieval") & (csv.kind == "run")].set_index("run")
    assert runs.at["lilt_lwa", "de TR@1"] == pytest.approx(43.0)
    assert runs.at["lilt_lwa", "de TR@1 std"] == pytest.approx(math.sqrt(18))
    assert runs.at["lilt_lwa", "n"] == 2 and runs.at["clip-run", "n"] == 1
    assert runs.at["lilt_lwa", "percent_trainable"] == pytest.approx(7.01)
    assert runs.at["clip-run", "sw IR@1"] == pytest.approx(10.0)
    assert math.isnan(runs.at["clip-run", "sw IR@1 std"])
    delta = csv[(csv.table == "retrieval") & (csv.kind == "delta")].set_index("run")
    assert delta.at["lilt_lwa", "de TR@1"] == pytest.approx(13.0)
    assert delta.at["lilt_lwa", "baseline"] == "clip-run"
    assert str(csv["n"].dtype).startswith("int") or csv["n"].isna().any()
    assert runs["n"].tolist() == [1, 2]
    probe = csv[(csv.table == "text_probe") & (csv.kind == "run")].set_index("run")
    assert "mean (all) en->x@1" not in csv.columns  # the probe averages untrained languages only
    assert probe.at["lilt_lwa", "sw en->x@1"] == pytest.approx(72.0)
    assert probe.at["lilt_lwa", "mean (non-en) x->en@1"] == pytest.approx((88 + 68 + 90 + 72) / 4)

    md = out.with_suffix(".md").read_text()
    assert "## Text-only cross-lingual retrieval probe" in md
    for needle in ("emoji-xtd", "protocol: test", "tiny-bert", "tiny-vit", "lilt_lwa", "7.01", "s1.json",
                   "made by mlilt report", "mean ± sample standard deviation"):
        assert needle in md, needle
    tex = out.with_suffix(".tex").read_text()
    assert "\\begin{tabular}" in tex and "lilt\\_lwa" in tex and "$\\Delta$" in tex and "% eval set: emoji-xtd" in tex
    assert "\\multicolumn{2}{c}{sw}" in tex
    head = out.with_suffix(".csv").read_text().splitlines()[0]
    assert head.startswith("# eval set: emoji-xtd")


def test_malformed_file_error_names_file_and_field(tmp_path):
    good = write(tmp_path, "good.json", result())
    data = result()
    del data["run"]["strategy"]
    bad = write(tmp_path, "bad.json", data)
    with pytest.raises(rp.ResultFileError, match=r"bad\.json: missing field 'run\.strategy'"):
        rp.load_results([good, bad])
    data = result()
    del data["results"]["de"]["IR@5"]
    with pytest.raises(rp.ResultFileError, match=r"bad2\.json: missing field 'results\.de\.IR@5'"):
        rp.load_result(write(tmp_path, "bad2.json", data))
    data = result()
    data["results"]["sw"]["TR@1"] = "high"
    with pytest.raises(rp.ResultFileError, match=r"bad3\.json: field 'results\.sw\.TR@1' must be a number"):
        rp.load_result(write(tmp_path, "bad3.json", data))
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": "retrieval",\n  oops}')
    with pytest.raises(rp.ResultFileError, match=r"broken\.json: not valid JSON \(line 2"):
        rp.load_result(broken)
    # Through the CLI entry point the error is a ValueError that mlilt's main prints as "error: ...".
    with pytest.raises(ValueError, match="bad.json"):
        run_cli(["report", str(good), str(bad), "--out", str(tmp_path / "r")])


def test_mixed_eval_sets_or_repeated_seed_are_errors(tmp_path):
    a = write(tmp_path, "a.json", result())
    b = write(tmp_path, "b.json", result(name="other", eval_set="xtd10"))
    with pytest.raises(rp.ResultFileError, match="more than one eval set / protocol.*xtd10 / test: .*b.json"):
        build([a, b])
    c = write(tmp_path, "c.json", result(name="lwa-lr2"))  # same config, same seed: not seeds of one config
    with pytest.raises(rp.ResultFileError, match="same seed.*--group-by run"):
        build([a, c])
    t = build([a, c], group_by="run").table("retrieval")
    assert list(t.mean.index) == ["lwa-s0", "lwa-lr2"]


def test_report_module_imports_no_torch_or_model_code(tmp_path):
    # A report reads result files: neither report.py nor the package import it pulls in may load torch.
    source = Path(rp.__file__)
    tree = ast.parse(source.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    heavy = {"torch", "transformers", "timm", "accelerate", "mlilt"}
    torch_free = {"mlilt.sheets"}  # thumbnail drawing (PIL) for the gallery; the run below holds it to that
    assert not {m for m in imported if m.split(".")[0] in heavy and m not in torch_free}, imported
    gallery = {"rule": "test", "k": 1, "images": {"x.png": str(tmp_path / "x.png")},
               "queries": [{"target": "x.png", "captions": {"de": "ein Bild"}, "top": {"de": [["x.png", 0.5]]}}]}
    path = write(tmp_path, "a.json", result(probe={"de": 90.0}, gallery=gallery))
    code = ("import sys, mlilt.report as mod\n"
            f"mod.write_report(mod.build_report(mod.load_results([{str(path)!r}])), {str(tmp_path / 'r')!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert (tmp_path / "r.png").exists() and (tmp_path / "r.gallery.png").exists()


def test_headline_gives_mean_recall_per_row_in_unseen_and_trained_languages(tmp_path):
    paths = [write(tmp_path, "a0.json", result("lwa-s0", seed=0, tr1={"en": 40, "de": 30, "sw": 20})),
             write(tmp_path, "a1.json", result("lwa-s1", seed=1, tr1={"en": 42, "de": 32, "sw": 22})),
             write(tmp_path, "c.json", result("clip-s0", "clip", seed=0, percent=100.0,
                                              tr1={"en": 50, "de": 10, "sw": 10}))]
    line = rp.headline(rp.load_results(paths))
    # recalls(b)["mean"] = b - 1/3; unseen = mean over de, sw; seeds as mean ± sample std.
    assert "mean (non-en): lilt_lwa 25.7 ± 1.4, clip-s0 9.7" in line
    assert "; en: lilt_lwa 40.7 ± 1.4, clip-s0 49.7" in line
    assert "n = 1/2 seed(s)" in line and "\n" not in line
