"""Statistics over result files: paired differences to a baseline with t intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .results import ResultFile
from .tables import _find_baseline, _group, _labels


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_differences(results: list[ResultFile], baseline: str, *, key: str = "mean",
                       languages: list[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Every configuration minus ``baseline``, paired by seed and language, with a t interval.

    For each row, the differences ``row[seed][lang][key] - baseline[seed][lang][key]`` over the seeds
    both have and ``languages`` (default: every language both have) are n paired samples; the
    interval is mean ± t(confidence, n-1) · sd/√n. Languages of one seed are not independent
    samples, so the interval is narrower than one over seeds alone would be: read it as a summary
    of how consistent the gap is across seeds and languages, not as a test of a population.
    """
    groups = _group(results, "config")
    labels = _labels(groups)
    base = groups[_find_baseline(baseline, groups, labels)]
    base_by_seed = {m.run["seed"]: m.results for m in base}
    rows = []
    for label, members in zip(labels, groups):
        if members is base:
            continue
        diffs, seeds, langs = [], set(), set()
        for m in members:
            other = base_by_seed.get(m.run["seed"])
            if other is None:
                continue
            for lang in languages or [lang for lang in m.results if lang in other]:
                if lang in m.results and lang in other:
                    diffs.append(m.results[lang][key] - other[lang][key])
                    seeds.add(m.run["seed"])
                    langs.add(lang)
        n = len(diffs)
        mean = float(np.mean(diffs)) if n else math.nan
        half = (_t_quantile(0.5 + confidence / 2, n - 1) * float(np.std(diffs, ddof=1)) / math.sqrt(n)
                if n > 1 else math.nan)
        rows.append({"run": label, "strategy": members[0].run["strategy"], "seeds": len(seeds),
                     "languages": len(langs), "n": n, "delta": mean, "ci_low": mean - half,
                     "ci_high": mean + half})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()
