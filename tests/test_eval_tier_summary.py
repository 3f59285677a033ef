"""mlilt eval's text table: results in many languages end with a summary per resource tier."""

from __future__ import annotations

import pytest

from mlilt.evaluation.results import TIER_SUMMARY_FROM, format_table

METRICS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")


def _result(n_langs: int) -> dict:
    """A retrieval result in ``n_langs`` made-up languages: tier = index % 3, mean recall = 10 * tier + index."""
    langs = [f"l{i:02d}" for i in range(n_langs)]
    results = {lang: {m: float(10 * (i % 3) + i) for m in METRICS} for i, lang in enumerate(langs)}
    return {"eval_set": "toy", "protocol": "all", "num_images": 5, "run": {"name": "r", "strategy": "s"},
            "results": results, "text_probe": {lang: {"en->x@1": 50.0 + i, "x->en@1": 0.0}
                                                for i, lang in enumerate(langs)},
            "languages": {lang: {"name": lang.upper(), "tier": i % 3} for i, lang in enumerate(langs)}}


def test_many_languages_end_with_the_mean_of_each_tier():
    result = _result(TIER_SUMMARY_FROM + 4)
    lines = format_table(result).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("per resource tier"))
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 2:start + 5]}
    assert list(rows) == ["2", "1", "0"]  # most resourced first
    for tier, (count, mean, probe) in rows.items():
        members = [i for i in range(len(result["results"])) if i % 3 == int(tier)]
        assert int(count) == len(members)
        assert float(mean) == pytest.approx(sum(10 * int(tier) + i for i in members) / len(members), abs=0.05)
        assert float(probe) == pytest.approx(sum(50.0 + i for i in members) / len(members), abs=0.05)


def test_a_few_languages_keep_one_row_each_and_no_summary():
    assert "per resource tier" not in format_table(_result(8))
