"""Statistics over result files: paired differences to a baseline, slopes against a resource measure; t intervals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from .results import ResultFile
from .languages import log_resource
from .steps import last_steps
from .tables import Report, Table, _base_language, _find_baseline, _group, _labels


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_differences(results: list[ResultFile], baseline: str, *, key: str = "mean",
                       languages: list[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Every configuration minus ``baseline`` (each run at its last step), paired by seed and language, t interval.

    For each row, the differences ``row[seed][lang][key] - baseline[seed][lang][key]`` over the seeds
    both have and ``languages`` (default: every language both have) are n paired samples; the
    interval is mean ± t(confidence, n-1) · sd/√n. Languages of one seed are not independent
    samples, so the interval is narrower than one over seeds alone would be: read it as a summary
    of how consistent the gap is across seeds and languages, not as a test of a population.
    """
    samples, labels = _paired_samples(results, baseline, key)
    if languages is not None:
        samples = samples[samples["language"].isin(languages)]
    rows = [_summary(samples[samples["run"] == label], confidence) | {"run": label, "strategy": strategy}
            for label, strategy in labels.items()]
    return pd.DataFrame(rows).set_index("run")[_COLUMNS] if rows else pd.DataFrame()


def language_differences(results: list[ResultFile], baseline: str, languages: list[str], *, key: str = "mean",
                         confidence: float = 0.95) -> pd.DataFrame:
    """:func:`paired_differences` one language at a time: per (row, language) the Δ to ``baseline`` paired by seed,
    its interval over the seeds alone (n = seeds; none for one seed); only pairs with a seed both have."""
    samples, labels = _paired_samples(results, baseline, key)
    by_pair = dict(iter(samples.groupby(["run", "language"], sort=False)))
    rows = [_summary(by_pair[label, lang], confidence) | {"run": label, "strategy": strategy, "language": lang}
            for lang in languages for label, strategy in labels.items() if (label, lang) in by_pair]
    return pd.DataFrame(rows).set_index(["run", "language"])[_COLUMNS] if rows else pd.DataFrame()


_COLUMNS = ["strategy", "seeds", "languages", "n", "delta", "ci_low", "ci_high"]


def _paired_samples(results: list[ResultFile], baseline: str, key: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every (row, seed, language) that the row and ``baseline`` both have, with the difference row − baseline in
    ``key`` (each run at its last step); and each compared row's strategy, in the report's order."""
    groups = _group(last_steps(results), "config")
    labels = _labels(groups)
    base = groups[_find_baseline(baseline, groups, labels)]
    base_by_seed = {m.run["seed"]: m.results for m in base}
    compared, samples = {}, []
    for label, members in zip(labels, groups):
        if members is base:
            continue
        compared[label] = members[0].run["strategy"]
        for m in members:
            other = base_by_seed.get(m.run["seed"], {})
            samples += [(label, m.run["seed"], lang, values[key] - other[lang][key])
                        for lang, values in m.results.items() if lang in other]
    return pd.DataFrame(samples, columns=["run", "seed", "language", "diff"]), compared


def _summary(samples: pd.DataFrame, confidence: float) -> dict:
    """The mean of paired differences and its t interval (none for fewer than two)."""
    diffs = samples["diff"].to_numpy(dtype=float)
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else math.nan
    half = (_t_quantile(0.5 + confidence / 2, n - 1) * float(np.std(diffs, ddof=1)) / math.sqrt(n)
            if n > 1 else math.nan)
    return {"seeds": samples["seed"].nunique(), "languages": samples["language"].nunique(), "n": n,
            "delta": mean, "ci_low": mean - half, "ci_high": mean + half}


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """A least-squares line y = intercept + slope·x with the slope's confidence interval."""

    slope: float
    intercept: float
    low: float
    high: float
    n: int
    confidence: float


def fit_slope(x, y, confidence: float = 0.95) -> SlopeFit:
    """Least-squares slope of y on x (scipy.stats.linregress) and its interval slope ± t(n−2)·stderr."""
    from scipy.stats import linregress

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:  # two points fit exactly: no interval; one x value: no slope
        return SlopeFit(math.nan, math.nan, math.nan, math.nan, len(x), confidence)
    fit = linregress(x, y)
    half = _t_quantile(0.5 + confidence / 2, len(x) - 2) * fit.stderr
    return SlopeFit(float(fit.slope), float(fit.intercept), float(fit.slope - half), float(fit.slope + half),
                    len(x), confidence)


UNTRAINED = "frozen"  # the strategy of the untrained towers (mlilt.strategies' preset): the reference, not a row
UNTRAINED_PROBE = "en->x@1"  # the untrained text tower's knowledge of a language: English captions finding its own


def untrained_row(report: Report) -> str | None:
    """The retrieval table's row of the untrained towers (strategy 'frozen'), or None."""
    rows = report.table("retrieval").rows
    return next((run for run in rows.index if rows.at[run, "strategy"] == UNTRAINED), None)


def compared_rows(report: Report, table: Table) -> list[str]:
    """The rows a scatter against the baseline shows: every Δ row but the untrained towers' (with no baseline,
    every row)."""
    if table.delta is None:
        return list(table.mean.index)
    return [run for run in table.delta.index if table.rows.at[run, "strategy"] != UNTRAINED]


def untrained_probe_points(report: Report, table: Table, run: str,
                           key: str = UNTRAINED_PROBE) -> tuple[list[str], np.ndarray, np.ndarray]:
    """As :func:`resource_points`, with x the untrained towers' text probe ``key`` in the language (%) instead of
    its CC-100 size; empty when the report has no untrained row or no probe."""
    probe, untrained = report.table("text_probe"), untrained_row(report)
    if probe is None or untrained is None or untrained not in probe.mean.index:
        return [], np.array([]), np.array([])
    known = {lang: float(probe.mean.at[untrained, (lang, key)]) for lang in probe.languages
             if (lang, key) in probe.mean.columns and not math.isnan(probe.mean.at[untrained, (lang, key)])}
    tags, _, y = _language_points(report, table, run, lambda lang: known.get(lang))
    return tags, np.array([known[t] for t in tags]), y


def resource_points(report: Report, table: Table, run: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per language not trained on with a recorded CC-100 size: its tag, log10 GiB, and the row's Δ to the baseline
    (its value when there is no baseline), averaged over the table's metrics (e.g. TR@1 and IR@1)."""
    return _language_points(report, table, run, lambda lang: log_resource(lang, report.languages))


def _language_points(report: Report, table: Table, run: str, measure) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(tag, measure(tag), Δ) for each language not trained on whose measure and Δ are known."""
    frame = table.delta if table.delta is not None and run in table.delta.index else table.mean
    trained = {_base_language(t) for t in report.train_languages}
    tags, xs, ys = [], [], []
    for lang in (lang for lang in table.languages if _base_language(lang) not in trained):
        x = measure(lang)
        values = [float(frame.at[run, (lang, k)]) for k in _metrics(table)]
        if x is not None and not any(math.isnan(v) for v in values):
            tags.append(lang)
            xs.append(x)
            ys.append(float(np.mean(values)))
    return tags, np.array(xs), np.array(ys)


def _metrics(table: Table) -> list[str]:
    return list(dict.fromkeys(k for _, k in table.mean.columns))
