"""mlilt report over several test sets: a report per set, a summary per set × tier, the languages side by side."""

from __future__ import annotations

import pandas as pd
import pytest
from test_report import result, run_cli, write

from mlilt import report as rp
from mlilt.report.sets import build_sets_report

# As `mlilt eval` records them; ru's tier and size are the files', sw and yo share tier 2 here, fi has none.
INFO = {"en": {"name": "English", "tier": 5, "cc100_gib": 300.8},
        "ru": {"name": "Russian", "tier": 4, "cc100_gib": 278.0},
        "sw": {"name": "Swahili", "tier": 2, "cc100_gib": 1.6},
        "yo": {"name": "Yoruba", "tier": 2, "cc100_gib": 0.001},
        "fi": {"name": "Finnish"}}


def pick(tags):
    return {tag: INFO[tag] for tag in tags}


@pytest.fixture
def two_sets(tmp_path):
    """clip and lilt_lwa on xtd200 (en sw yo ru) and on xm3600 (en sw ru fi); only clip also on xm3600 'first'."""
    xtd = ["en", "sw", "yo", "ru"]
    xm = ["en", "sw", "ru", "fi"]
    files = [
        write(tmp_path, "clip-xtd.json", result("clip-s0", "clip", percent=100.0, eval_set="xtd200", protocol="1k",
                                                tr1=dict(zip(xtd, [70.0, 16.0, 12.0, 30.0])), languages=pick(xtd))),
        write(tmp_path, "lwa-xtd.json", result("lwa-s0", eval_set="xtd200", protocol="1k",
                                               tr1=dict(zip(xtd, [60.0, 20.0, 14.0, 40.0])), languages=pick(xtd))),
        write(tmp_path, "clip-xm.json", result("clip-s0", "clip", percent=100.0, eval_set="xm3600",
                                               protocol="multi", tr1=dict(zip(xm, [50.0, 12.0, 20.0, 24.0])),
                                               languages=pick(xm))),
        write(tmp_path, "lwa-xm.json", result("lwa-s0", eval_set="xm3600", protocol="multi",
                                              tr1=dict(zip(xm, [44.0, 16.0, 30.0, 36.0])), languages=pick(xm))),
    ]
    return files


def test_summary_per_set_and_tier_averages_what_each_set_has(two_sets):
    rep = build_sets_report(rp.load_results(two_sets), baseline="clip")
    assert list(rep.reports) == ["xtd200 (1k)", "xm3600 (multi)"]
    s, n = rep.summary, rep.counts
    assert list(s.index) == [("xtd200 (1k)", "mean (non-en)"), ("xtd200 (1k)", "tier 4"), ("xtd200 (1k)", "tier 2"),
                             ("xm3600 (multi)", "mean (non-en)"), ("xm3600 (multi)", "tier 4"),
                             ("xm3600 (multi)", "tier 2"), ("xm3600 (multi)", "tier ?")]
    # xtd200's tier 2 is sw and yo; xm3600's is sw alone; fi has no tier.
    assert n[("xtd200 (1k)", "tier 2")] == 2 and n[("xm3600 (multi)", "tier 2")] == 1
    assert n[("xtd200 (1k)", "mean (non-en)")] == 3 and n[("xm3600 (multi)", "tier ?")] == 1
    assert s.at[("xtd200 (1k)", "tier 2"), ("lwa-s0", "TR@1")] == pytest.approx((20 + 14) / 2)
    assert s.at[("xtd200 (1k)", "tier 2"), ("clip-s0", "IR@1")] == pytest.approx((6 + 2) / 2)  # IR@1 = TR@1 - 10
    assert s.at[("xm3600 (multi)", "tier 2"), ("lwa-s0", "TR@1")] == pytest.approx(16.0)
    assert s.at[("xm3600 (multi)", "mean (non-en)"), ("clip-s0", "TR@1")] == pytest.approx((12 + 20 + 24) / 3)
    assert s.at[("xm3600 (multi)", "tier ?"), ("lwa-s0", "TR@1")] == pytest.approx(36.0)
    # Each set's own report is what a single-set report of its files is.
    alone = rp.build_report(rp.load_results(two_sets[2:]), baseline="clip")
    assert rep.reports["xm3600 (multi)"].table("retrieval").mean.equals(alone.table("retrieval").mean)


def test_languages_side_by_side_aligned_by_tag(two_sets, tmp_path, capsys):
    rep = build_sets_report(rp.load_results(two_sets))
    side = rep.side_by_side
    assert list(side.index) == ["en", "ru", "sw", "yo", "fi"]  # by tier, then CC-100 size; untiered last
    assert side.at["sw", ("lwa-s0", "xtd200 (1k)", "TR@1")] == 20.0
    assert side.at["sw", ("lwa-s0", "xm3600 (multi)", "TR@1")] == 16.0
    assert side.at["ru", ("clip-s0", "xm3600 (multi)", "IR@1")] == 10.0
    assert pd.isna(side.at["yo", ("clip-s0", "xm3600 (multi)", "TR@1")])  # xm3600 has no Yoruba
    assert pd.isna(side.at["fi", ("clip-s0", "xtd200 (1k)", "TR@1")])

    assert run_cli(["report", *map(str, two_sets), "--baseline", "clip"]) == 0
    md = capsys.readouterr().out
    assert md.index("## Summary per test set and resource tier") < md.index("## Per language, side by side") \
        < md.index("## Test set xtd200 (1k)") < md.index("## Test set xm3600 (multi)")
    assert "| xtd200 (1k) | tier 2 | 2 | 14.0 | 4.0 | 17.0 | 7.0 |" in md
    assert "| sw | Swahili | 2 | 1.60 | 16.0 | 6.0 | 12.0 | 2.0 | 20.0 | 10.0 | 16.0 | 6.0 |" in md
    assert "| yo | Yoruba | 2 | 0.00 | 12.0 | 2.0 | – | – | 14.0 | 4.0 | – | – |" in md
    assert "Δ lwa-s0 − clip-s0" in md  # each set keeps its Δ rows
    assert f"files of xm3600 (multi): {two_sets[2]}, {two_sets[3]}" in md

    out = tmp_path / "reports" / "both"
    assert run_cli(["report", *map(str, two_sets), "--out", str(out), "--no-plot"]) == 0
    for name in ("both.md", "both.csv", "both.xtd200-1k.md", "both.xtd200-1k.tex", "both.xm3600-multi.csv"):
        assert (out.parent / name).stat().st_size > 0, name
    assert "[both.xm3600-multi.md](both.xm3600-multi.md)" in (out.parent / "both.md").read_text()
    csv = pd.read_csv(out.parent / "both.csv", comment="#")
    summary = csv[(csv.part == "summary") & (csv.run == "lwa-s0") & (csv.metric == "TR@1")].set_index(["set", "row"])
    assert summary.at[("xtd200 (1k)", "tier 2"), "value"] == pytest.approx(17.0)
    assert summary.at[("xtd200 (1k)", "tier 2"), "languages"] == 2
    yo = csv[(csv.part == "language") & (csv.row == "yo") & (csv.run == "lwa-s0") & (csv.metric == "TR@1")]
    assert dict(zip(yo.set, yo.value.fillna(-1))) == {"xtd200 (1k)": 14.0, "xm3600 (multi)": -1}


def test_runs_may_differ_per_set_and_protocols_count_as_sets(two_sets, tmp_path):
    first = write(tmp_path, "clip-first.json", result("clip-s0", "clip", percent=100.0, eval_set="xm3600",
                                                      protocol="first", tr1={"en": 40.0, "sw": 15.0},
                                                      languages=pick(["en", "sw"])))
    rep = build_sets_report(rp.load_results([*two_sets, first]))
    assert list(rep.reports) == ["xtd200 (1k)", "xm3600 (multi)", "xm3600 (first)"]
    assert rep.side_by_side.at["sw", ("clip-s0", "xm3600 (first)", "TR@1")] == 15.0
    assert ("lwa-s0", "xm3600 (first)", "TR@1") not in rep.side_by_side.columns  # no column of a run a set lacks
    assert pd.isna(rep.summary.at[("xm3600 (first)", "tier 2"), ("lwa-s0", "TR@1")])
    # A set without the baseline's run gets no Δ rows, and a note says so; the others keep theirs.
    rep = build_sets_report(rp.load_results([*two_sets[1:], first]), baseline="clip")
    assert rep.reports["xtd200 (1k)"].table("retrieval").delta is None
    assert rep.reports["xm3600 (multi)"].table("retrieval").delta.at["lwa-s0", ("sw", "TR@1")] == pytest.approx(4.0)
    assert rep.notes == ["xtd200 (1k): no run or strategy 'clip'; its tables have no Δ rows."]
    # --langs is resolved over all sets; each set shows those of them it has.
    rep = build_sets_report(rp.load_results(two_sets), languages=["swahili", "yo"])
    assert [r.table("retrieval").languages for r in rep.reports.values()] == [["sw", "yo"], ["sw"]]


def test_what_cannot_be_compared_is_a_one_line_error(two_sets, tmp_path):
    files = rp.load_results(two_sets)
    other = write(tmp_path, "m30k.json", result("lwa-s0", eval_set="multi30k", protocol="test_2016_flickr",
                                                tr1={"de": 30.0, "cs": 20.0}))
    with pytest.raises(rp.ResultFileError, match=r"^the test sets share no language tag.*xtd200 \(1k\): ru; "
                                                 r"multi30k \(test_2016_flickr\): de\); make one report per set$"):
        build_sets_report([files[0], rp.load_result(other)], languages=["ru", "de"])
    with pytest.raises(rp.ResultFileError, match=r"^--baseline 'lit' matches no run name or strategy in any test "
                                                 r"set; runs: clip-s0, lwa-s0$"):
        build_sets_report(files, baseline="lit")
    with pytest.raises(rp.ResultFileError, match=r"^xm3600 \(multi\): no retrieval results in the languages "
                                                 r"selected \(--langs yo\)"):
        build_sets_report(files, languages=["yo"])
