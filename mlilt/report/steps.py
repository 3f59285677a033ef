"""Results of several checkpoints of a run (``run.step``): each run's last step, and the table against the step."""

from __future__ import annotations

import pandas as pd

from .results import ResultFile
from .tables import Table, _build_table, _config_key, _only

STEP_RECALL = "mean"  # mean of TR/IR@1/5/10: the steadiest single recall to follow over training
STEP_PROBE = "en->x@1"
# The tiers of `mlilt eval --langs low` (Joshi classes 0-2; mlilt.evaluation.languages.TIER_GROUPS, not imported:
# the report reads files only) as one curve, since the lowest tier alone may be a single language.
LOW_TIERS = frozenset({0, 1, 2})
LOW_GROUP = f"low resource (tiers {min(LOW_TIERS)}-{max(LOW_TIERS)})"


def runs_by_step(results: list[ResultFile]) -> dict[tuple, dict[int, ResultFile]]:
    """Per run (configuration and seed), its files that record a step, one per step (the final model's first)."""
    runs: dict[tuple, dict[int, ResultFile]] = {}
    for r in results:
        if r.step is None:
            continue
        steps = runs.setdefault((_config_key(r, "run"), r.run["seed"]), {})
        if r.step not in steps or (r.run.get("checkpoint") == "model" != steps[r.step].run.get("checkpoint")):
            steps[r.step] = r
    return runs


def last_steps(results: list[ResultFile]) -> list[ResultFile]:
    """Each run's file at its last step (files without a step stay as they are), in the order given."""
    last = {id(steps[max(steps)]) for steps in runs_by_step(results).values()}
    return [r for r in results if r.step is None or id(r) in last]


def has_history(results: list[ResultFile]) -> bool:
    """Whether some run was scored at more than one step."""
    return any(len(steps) > 1 for steps in runs_by_step(results).values())


def steps_per_epoch(results: list[ResultFile]) -> int | None:
    """The steps of one epoch, where every file scored at a step records its epochs (``run.epoch``) and all agree
    (runs of one data set and batch size), else None."""
    per_epoch = set()
    for r in results:
        if r.step is None:
            continue
        if not r.run.get("epoch"):
            return None
        per_epoch.add(round(r.step / r.run["epoch"]))
    return per_epoch.pop() if len(per_epoch) == 1 else None


def low_resource(languages: list[str], info: dict[str, dict]) -> dict[str, list[str]]:
    """{LOW_GROUP: those of ``languages`` in the low-resource tiers (``mlilt eval --langs low``)}, or {} if none is."""
    low = [lang for lang in languages if info.get(lang, {}).get("tier") in LOW_TIERS]
    return {LOW_GROUP: low} if low else {}


def steps_table(groups: list[list[ResultFile]], labels: list[str], results: list[ResultFile],
                train_languages: list[str], languages: list[str] | None = None,
                info: dict[str, dict] | None = None) -> Table | None:
    """Mean recall (English, the other languages and, where ``info`` records tiers, the low-resource ones) and the
    text probe per configuration and step, seeds as mean ± std, over ``languages`` (None: all); the
    configurations are ``groups`` (each run at its last step) labelled ``labels``."""
    runs = runs_by_step(results)
    step_groups, step_labels, steps = [], [], []
    for label, members in zip(labels, groups):
        histories = [runs.get((_config_key(m, "run"), m.run["seed"]), {}) for m in members]
        for step in sorted({s for h in histories for s in h}):
            step_groups.append([h[step] for h in histories if step in h])
            step_labels.append(f"{label} @ {step}")
            steps.append((label, step))
    if not step_groups:
        return None
    ignored: list[str] = []  # the main tables already note languages a row lacks
    recall = _build_table("steps", "", step_groups, step_labels, [STEP_RECALL],
                          lambda r: _only(r.results, languages), train_languages, None, ignored,
                          tiers=lambda langs: low_resource(langs, info or {}))
    probe = _build_table("steps", "", step_groups, step_labels, [STEP_PROBE],
                         lambda r: _only(r.text_probe, languages), train_languages, None, ignored, all_mean=False)
    keep = [lang for lang in train_languages if lang in recall.languages]
    parts = [(recall, [c for c in recall.mean.columns
                       if c[0] in keep or c[0].startswith("mean (non-") or c[0] == LOW_GROUP],
              "recall")]
    if probe is not None:
        parts.append((probe, [c for c in probe.mean.columns if c[0].startswith("mean (non-")], "text probe"))

    def frame(attr: str) -> pd.DataFrame:
        out = pd.concat([getattr(t, attr)[cols] for t, cols, _ in parts], axis=1).reindex(recall.mean.index)
        out.columns = pd.MultiIndex.from_tuples([(f"{what} {g}", k) for t, cols, what in parts for g, k in cols],
                                                names=["group", "metric"])
        return out

    rows = recall.rows.copy()
    rows.insert(0, "step", [s for _, s in steps])
    rows.insert(0, "config", [label for label, _ in steps])
    groups_shown = {f"{what} {g}": (t.mean_languages.get(g) or [g]) for t, cols, what in parts for g, _ in cols}
    return Table("steps", f"Against the training step: mean recall (TR/IR@1/5/10) and text probe {STEP_PROBE} (%)",
                 rows, frame("mean"), frame("std"), None, [], groups_shown, recall.row_languages)
