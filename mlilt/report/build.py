"""Building a report from result files: the language selection, each run's last step, its tables and notes."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .languages import select_languages, tier_groups
from .results import METRICS, PROBE_KEYS, ResultFile, ResultFileError, language_info
from .steps import has_history, last_steps, steps_per_epoch, steps_table
from .tables import (MANY_LANGUAGES, Report, Table, _build_table, _check_one_test_set, _find_baseline, _group,
                     _labels, _mlilt_version, _only, _ordered_languages)


def build_report(results: list[ResultFile], *, baseline: str | None = None, metric: str = "R@1",
                 group_by: str = "config", train_languages=("en",), languages: list[str] | None = None) -> Report:
    """The retrieval table (and the text-probe table when present) of validated result files.

    ``languages`` (``--langs``) restricts the tables to those languages or tiers (``tier2``); a run scored at
    several checkpoints (``run.step``) is tabulated at its last step, and a table against the step is added.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if group_by not in ("config", "run"):
        raise ValueError(f"group_by must be 'config' or 'run', got {group_by!r}")
    if not results:
        raise ResultFileError("no result files given")
    train_languages = list(train_languages)
    eval_set, protocol = _check_one_test_set(results)
    info = language_info(results)
    selected = None
    if languages:
        available = _ordered_languages([t for r in results for t in (r.results, r.text_probe or {})])
        selected = select_languages(list(languages), available, info)
    latest = last_steps(results)
    groups = _group(latest, group_by)
    labels = _labels(groups)
    baseline_index = _find_baseline(baseline, groups, labels) if baseline else None
    keys = ["mean"] if metric == "mean" else [f"TR@{metric[2:]}", f"IR@{metric[2:]}"]
    notes: list[str] = []

    def tiers(langs: list[str]) -> dict[str, list[str]]:
        """Tier columns, for a table of many languages only: eight keep today's layout."""
        return tier_groups(langs, info) if len(langs) > MANY_LANGUAGES else {}

    tables = [_build_table("retrieval", f"Image-text retrieval, {metric} (%)", groups, labels, keys,
                           lambda r: _only(r.results, selected), train_languages, baseline_index, notes, tiers=tiers),
              # The probe's mean leaves the trained languages out: en->en retrieval is trivially ~100.
              _build_table("text_probe", "Text-only cross-lingual retrieval probe, R@1 (%)", groups, labels,
                           list(PROBE_KEYS), lambda r: _only(r.text_probe, selected), train_languages,
                           baseline_index, notes, all_mean=False, tiers=tiers)]
    if tables[0] is None:
        raise ResultFileError(f"--langs {','.join(languages)}: no result file has retrieval results in "
                              f"{', '.join(selected)}")
    history = has_history(results)
    if history:
        tables.append(steps_table(groups, labels, results, train_languages, selected, info))
        notes.append(f"runs scored at several steps: the tables above show each run at its last step; "
                     f"'{tables[-1].title}' follows them over training.")
    notes.extend(_leakage_notes(latest))
    sizes = {r.data.get("num_images") for r in latest}
    if len(sizes) > 1:
        counts = ", ".join(map(str, sorted(sizes, key=str)))
        notes.append(f"the files were scored on different numbers of images ({counts}); "
                     "their recalls are not strictly comparable (e.g. leakage exclusion).")
    return Report(tables=[t for t in tables if t is not None], files=results, eval_set=eval_set, protocol=protocol,
                  metric=metric, baseline=labels[baseline_index] if baseline_index is not None else None,
                  train_languages=train_languages, group_by=group_by,
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  mlilt_version=_mlilt_version(), notes=notes, languages=info, selected=selected,
                  steps_per_epoch=steps_per_epoch(results) if history else None)


def headline(results: list[ResultFile], train_languages=("en",)) -> str:
    """One line of what a comparison shows: each row's mean recall in unseen and in trained languages."""
    table = build_report(results, metric="mean", train_languages=train_languages).table("retrieval")
    columns = headline_groups(table, train_languages)

    def cell(run: str, group: str) -> str:
        mean, std = table.mean.at[run, (group, "mean")], table.std.at[run, (group, "mean")]
        return f"{mean:.1f}" + ("" if math.isnan(std) else f" ± {std:.1f}")

    parts = [f"{group}: " + ", ".join(f"{run} {cell(run, group)}" for run in table.mean.index) for group in columns]
    seeds = sorted({int(n) for n in table.rows["n"]})
    return (f"mean recall (R@1/5/10, both directions, %; n = {'/'.join(map(str, seeds))} seed(s)) -- "
            + "; ".join(parts))


def headline_groups(table: Table, train_languages) -> list[str]:
    """The columns a headline quotes: the mean over the languages not trained on, then each trained language."""
    return ([g for g in table.mean_languages if g.startswith("mean (non-")]
            + [lang for lang in train_languages if lang in table.languages])


def _leakage_notes(results: list[ResultFile]) -> list[str]:
    """A warning for each file whose test images overlap its training data and were not excluded."""
    notes = []
    for r in results:
        leak = r.data.get("leakage") or {}
        if leak.get("overlap") and not leak.get("excluded"):
            notes.append(f"WARNING {r.path}: {leak['overlap']} test images overlap the training data of "
                         f"run '{r.run['name']}' and were not excluded.")
    return notes
