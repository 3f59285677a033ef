"""mlilt report on languages: --langs (codes, names, tiers), each row's means over its own languages, and the
many-language layout (summary per tier, per-language table, scatter of Δ against the resource measure)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats
from test_report import recalls, result, run_cli, write

from mlilt import report as rp

EIGHT = ["en", "ru", "pl", "tr", "zh", "ko", "it", "es"]


def test_langs_keeps_the_files_order_and_any_case(tmp_path, capsys):
    path = write(tmp_path, "a.json", result(tr1={lang: 40.0 + i for i, lang in enumerate(EIGHT)}))
    t = rp.build_report(rp.load_results([path]), languages=["TR", "ru"]).table("retrieval")
    assert t.languages == ["ru", "tr"]  # the files' order, not the order asked
    assert t.mean.at["lwa-s0", ("mean (all)", "TR@1")] == pytest.approx((41 + 43) / 2)
    assert run_cli(["report", str(path), "--langs", "ko,EN"]) == 0
    printed = capsys.readouterr().out
    assert "| en TR@1 | en IR@1 | ko TR@1 |" in printed and "ru TR@1" not in printed
    assert "languages selected (--langs): en, ko" in printed
    with pytest.raises(rp.ResultFileError, match=r"--langs ruu: no such language.*close: ru"):
        rp.build_report(rp.load_results([path]), languages=["ruu"])


def test_each_row_averages_the_languages_it_has_and_says_which(tmp_path):
    """The untrained row was scored before sw was added: its mean covers ru, tr; the trained row's covers all three."""
    trained = write(tmp_path, "lwa.json", result(tr1={"en": 60.0, "ru": 40.0, "tr": 30.0, "sw": 20.0}))
    base = write(tmp_path, "base.json", result("frozen-base", "frozen", percent=0.0,
                                               tr1={"en": 12.0, "ru": 11.0, "tr": 13.0}))
    rep = rp.build_report(rp.load_results([trained, base]))
    t = rep.table("retrieval")
    assert t.mean.at["lwa-s0", ("mean (non-en)", "TR@1")] == pytest.approx(30.0)
    assert t.mean.at["frozen-base", ("mean (non-en)", "TR@1")] == pytest.approx(12.0)
    assert t.mean.at["frozen-base", ("mean (all)", "TR@1")] == pytest.approx(12.0)
    assert t.row_languages["frozen-base"]["mean (non-en)"] == ["ru", "tr"]
    md = rp.render_markdown(rep)
    assert "frozen-base lacks sw; its mean columns average the languages it has" in md
    assert "each row averages those of the column's languages it has" in md
    row = ("| frozen-base | frozen | 0.00 | 1 | 12.0 | 2.0 | 11.0 | 1.0 | 13.0 | 3.0 | – | – "
           "| 12.0* | 2.0* | 12.0* |")
    assert row in md
    assert "* averages only the languages that row has" in md


def language_info(tags: list[str]) -> dict:
    """Per-language fields as `mlilt eval` records them; the last two languages have no CC-100 size nor tier."""
    info = {}
    for i, tag in enumerate(tags):
        known = i < len(tags) - 2
        info[tag] = {"code": f"{tag}x_Latn", "name": f"Language {i}", "images": 1000 - i,
                     "cc100_gib": round(0.01 * 2.0 ** (i % 15), 3) if known else None,
                     "tier": i % 6 if known else None}
    info["en"] = {"code": "eng_Latn", "name": "English", "cc100_gib": 300.8, "tier": 5, "images": 1000}
    return info


@pytest.fixture
def many(tmp_path):
    """clip and lilt_lwa on 30 languages plus English; lilt_lwa's Δ grows with log10 CC-100 size, plus noise."""
    tags = [f"l{i:02d}" for i in range(30)]
    info = language_info(tags)
    rng = np.random.default_rng(0)
    delta = {tag: 2.0 + 1.5 * math.log10(info[tag]["cc100_gib"] or 1.0) + rng.normal(0, 1) for tag in tags}
    delta["en"] = 1.0
    clip = write(tmp_path, "clip.json", result("clip-s0", "clip", percent=100.0, tr1={t: 30.0 for t in ["en", *tags]},
                                               languages=info))
    lwa = write(tmp_path, "lwa.json", result("lwa-s0", tr1={t: 30.0 + delta[t] for t in ["en", *tags]},
                                             languages=info))
    return rp.build_report(rp.load_results([clip, lwa]), baseline="clip"), info, delta


def test_many_languages_lead_with_a_summary_per_tier_then_a_table_per_language(many):
    report, info, delta = many
    t = report.table("retrieval")
    assert t.many and list(t.mean_languages) == ["mean (all)", "mean (non-en)", "tier 5", "tier 4", "tier 3",
                                                  "tier 2", "tier 1", "tier 0", "tier ?"]
    tier1 = [tag for tag in t.languages if info[tag]["tier"] == 1]
    assert t.mean_languages["tier 1"] == tier1
    assert t.delta.at["lwa-s0", ("tier 1", "TR@1")] == pytest.approx(np.mean([delta[x] for x in tier1]))
    assert "en" not in t.mean_languages["tier 5"]  # the trained language does not lift its tier
    md = rp.render_markdown(report)
    summary = md.index("## Image-text retrieval, R@1 (%): summary per resource tier")
    per_language = md.index("## Image-text retrieval, R@1 (%): per language")
    assert summary < per_language and "l05 TR@1" not in md  # no column pair per language
    rows = [line.split(" | ") for line in md[per_language:].splitlines() if re.match(r"\| (en|l\d\d) \|", line)]
    order = [cells[0].strip("| ") for cells in rows[:32]]
    expected = sorted(info, key=lambda x: (info[x]["tier"] is None, -(info[x]["tier"] or 0),
                                          info[x]["cc100_gib"] is None, -(info[x]["cc100_gib"] or 0), x))
    assert order == expected
    l07 = next(cells for cells in rows if cells[0] == "| l07")
    assert l07[1:5] == ["Language 7", "1.28", "1", "993"]
    assert l07[-2:] == [f"{delta['l07']:+.1f}", f"{delta['l07']:+.1f} |"]


def test_the_scatter_slope_is_the_least_squares_fit_of_the_plotted_points(many):
    report, info, delta = many
    table = report.table("retrieval")
    fig, fits = rp.charts.resource_figure(report, table)
    ax = fig.axes[0]
    points = ax.collections[0].get_offsets()
    x, y = np.asarray(points[:, 0]), np.asarray(points[:, 1])
    known = [tag for tag in table.languages if info[tag]["cc100_gib"] and tag != "en"]  # English: trained on
    assert x == pytest.approx([math.log10(info[tag]["cc100_gib"]) for tag in known])
    assert y == pytest.approx([delta[tag] for tag in known])  # Δ of TR@1 and IR@1 alike in the synthetic recalls
    slope, intercept = np.polyfit(x, y, 1)
    fit = fits["lwa-s0"]
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    line = ax.lines[0].get_xydata()
    drawn = (line[-1, 1] - line[0, 1]) / (line[-1, 0] - line[0, 0])
    assert drawn == pytest.approx(slope)
    n = len(x)
    stderr = math.sqrt(np.sum((y - (intercept + slope * x)) ** 2) / (n - 2) / np.sum((x - x.mean()) ** 2))
    half = stats.t.ppf(0.975, n - 2) * stderr
    assert (fit.low, fit.high, fit.n) == (pytest.approx(slope - half), pytest.approx(slope + half), n)
    assert fit.low < 1.5 < fit.high  # the slope the data were made with


def test_many_language_report_writes_the_scatter_and_eight_keep_the_bars(many, tmp_path):
    from PIL import Image

    report, _, _ = many
    written = rp.write_report(report, tmp_path / "r")
    with Image.open(tmp_path / "r.png") as im:
        assert "lwa-s0: slope" in im.text["Description"] and "clip.json" in im.text["Source"]
    assert tmp_path / "r.tex" in written and "\\begin{longtable}" in (tmp_path / "r.tex").read_text()
    eight = write(tmp_path, "eight.json", result(tr1={x: 40.0 for x in EIGHT},
                                                  languages={x: {"tier": 3, "cc100_gib": 5.0} for x in EIGHT}))
    t = rp.build_report(rp.load_results([eight])).table("retrieval")
    assert not t.many and list(t.mean_languages) == ["mean (all)", "mean (non-en)"]
    named = write(tmp_path, "named.json", result(tr1={"en": 40.0, "sw": 30.0, "xx": 20.0},
                                                  languages={"en": {"name": "English"}, "sw": {"name": "Swahili"}}))
    assert "Languages: en (English), sw (Swahili), xx." in rp.render_markdown(rp.build_report(rp.load_results([named])))


def test_langs_by_tier_code_or_name(many, tmp_path):
    report, info, _ = many
    files = report.files
    t = rp.build_report(files, languages=["tier0"]).table("retrieval")
    assert t.languages == [tag for tag in info if info[tag]["tier"] == 0 and tag != "en"]
    assert rp.build_report(files, languages=["L03X_LATN", "language 4"]).table("retrieval").languages == ["l03", "l04"]
    with pytest.raises(rp.ResultFileError, match="no language of the results is in tier 9"):
        rp.build_report(files, languages=["tier9"])
    plain = write(tmp_path, "plain.json", result(tr1={x: 40.0 for x in EIGHT}))
    with pytest.raises(rp.ResultFileError, match="record no resource tiers"):
        rp.build_report(rp.load_results([plain]), languages=["tier1"])


def test_bad_language_fields_name_the_file_and_field(tmp_path):
    data = result(languages={"sw": {"name": "Swahili", "tier": "low"}})
    with pytest.raises(rp.ResultFileError, match=r"bad\.json: field 'languages\.sw\.tier' must be a number"):
        rp.load_result(write(tmp_path, "bad.json", data))
    assert recalls(10.0)["TR@1"] == 10.0


def test_many_languages_without_a_resource_measure_chart_the_summary_columns(tmp_path):
    from PIL import Image

    tags = [f"l{i:02d}" for i in range(25)]
    path = write(tmp_path, "a.json", result(tr1={t: 40.0 for t in ["en", *tags]}))  # old file: no 'languages'
    report = rp.build_report(rp.load_results([path]))
    rp.write_report(report, tmp_path / "r")
    with Image.open(tmp_path / "r.png") as im:
        assert im.size[0] < 1500  # two panels (mean (all), mean (non-en)), not 26
    assert "| l03 |  |" in (tmp_path / "r.md").read_text()  # the bare code where no name is recorded


def test_against_the_untrained_probe_the_slope_is_the_fit_of_the_plotted_points(tmp_path):
    """With an untrained row and its text probe, a many-language report adds the scatter of each trained row's Δ
    against what the untrained text tower knew of each language; the untrained row is not a point series."""
    from PIL import Image

    tags = [f"l{i:02d}" for i in range(24)]
    info = language_info(tags)
    rng = np.random.default_rng(1)
    known = {tag: float(rng.uniform(5, 90)) for tag in tags}
    delta = {tag: 4.0 - 0.05 * known[tag] + rng.normal(0, 0.5) for tag in tags}
    every = ["en", *tags]
    paths = [write(tmp_path, "clip.json", result("clip-s0", "clip", percent=100.0, tr1={t: 30.0 for t in every},
                                                 probe={t: 20.0 for t in tags}, languages=info)),
             write(tmp_path, "lwa.json", result("lwa-s0", tr1={"en": 31.0} | {t: 30.0 + delta[t] for t in tags},
                                                probe={t: 40.0 for t in tags}, languages=info)),
             write(tmp_path, "frozen.json", result("frozen-s0", "frozen", percent=0.0, tr1={t: 12.0 for t in every},
                                                   probe=known, languages=info))]
    report = rp.build_report(rp.load_results(paths), baseline="clip")
    table = report.table("retrieval")
    fig, fits = rp.charts.untrained_probe_figure(report, table)
    assert list(fits) == ["lwa-s0"]  # the untrained row is the measure, not a series
    points = fig.axes[0].collections[0].get_offsets()
    x, y = np.asarray(points[:, 0]), np.asarray(points[:, 1])
    assert x == pytest.approx([known[t] for t in tags]) and y == pytest.approx([delta[t] for t in tags])
    slope, intercept = np.polyfit(x, y, 1)
    assert (fits["lwa-s0"].slope, fits["lwa-s0"].intercept) == (pytest.approx(slope), pytest.approx(intercept))
    assert fits["lwa-s0"].low < -0.05 < fits["lwa-s0"].high
    written = rp.write_report(report, tmp_path / "r")
    assert tmp_path / "r.untrained_probe.png" in written
    with Image.open(tmp_path / "r.untrained_probe.png") as im:
        written_slope = re.search(r"lwa-s0: slope (\S+),", im.text["Description"])[1]
    assert float(written_slope) == pytest.approx(slope)
    _, fits_on_size = rp.charts.resource_figure(report, table)
    assert list(fits_on_size) == ["lwa-s0"]


def test_the_curves_low_resource_tiers_are_those_of_langs_low():
    from mlilt.evaluation.languages import TIER_GROUPS
    from mlilt.report.steps import LOW_TIERS

    assert LOW_TIERS == TIER_GROUPS["low"]


def test_a_gallery_of_many_languages_shows_the_trained_ones_and_one_per_tier(many):
    report, info, _ = many
    tags = list(info)  # l00 … l29, then en
    chosen = rp.charts.gallery_languages(tags, report)
    tiers = {info[t]["tier"] for t in tags if t != "en"}
    assert "en" in chosen and len(chosen) == 1 + len(tiers)  # tiers 0-5 and the languages without one
    for tier in tiers:
        members = [t for t in tags if t != "en" and info[t]["tier"] == tier]
        best = max(members, key=lambda t: (info[t]["cc100_gib"] or 0, -tags.index(t)))
        assert [t for t in chosen if t in members] == [best if tier is not None else members[0]]
    assert rp.charts.gallery_languages(tags[:5], report) == tags[:5]  # few languages: all of them
