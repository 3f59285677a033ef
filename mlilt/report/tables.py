"""Report tables: result files grouped into configurations (seeds as mean ± std), mean columns and Δ rows."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from .results import ResultFile, ResultFileError

# More languages than this in a table: a summary per tier, a per-language table and a scatter chart
# instead of a column pair and a panel per language (which stop being readable at about this many).
MANY_LANGUAGES = 20


@dataclasses.dataclass
class Table:
    """One table of a report: per-row means, sample standard deviations, counts, and Δ to the baseline.

    ``mean`` and ``std`` are DataFrames indexed by row label with (group, metric) MultiIndex columns,
    group being a language or a mean column; ``rows`` holds strategy, models, trainable % and n per
    row; ``delta`` (rows = non-baseline runs) is None when there is no baseline in this table.
    """

    name: str
    title: str
    rows: pd.DataFrame
    mean: pd.DataFrame
    std: pd.DataFrame
    delta: pd.DataFrame | None
    languages: list[str]
    mean_languages: dict[str, list[str]]
    row_languages: dict[str, dict[str, list[str]]] = dataclasses.field(default_factory=dict)

    @property
    def many(self) -> bool:
        """More languages than a row of columns can show: summarised per tier, listed per language."""
        return len(self.languages) > MANY_LANGUAGES

    def group_columns(self) -> list[tuple[str, str]]:
        """The mean and tier columns (everything but the per-language ones)."""
        return [c for c in self.mean.columns if c[0] in self.mean_languages]


@dataclasses.dataclass
class Report:
    """Everything a report shows: its tables and where they came from."""

    tables: list[Table]
    files: list[ResultFile]
    eval_set: str
    protocol: str
    metric: str
    baseline: str | None
    train_languages: list[str]
    group_by: str
    created: str
    mlilt_version: str
    notes: list[str]
    languages: dict[str, dict] = dataclasses.field(default_factory=dict)
    selected: list[str] | None = None
    steps_per_epoch: int | None = None  # the curves' x is the epoch where known, else the step

    def table(self, name: str) -> Table | None:
        """The table called ``name`` ("retrieval" or "text_probe"), or None."""
        return next((t for t in self.tables if t.name == name), None)


def _mlilt_version() -> str:
    """The installed mlilt version, without importing mlilt (its package imports torch)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("mlilt")
    except PackageNotFoundError:
        return "unknown"


def _base_language(lang: str) -> str:
    """'en' for 'en', 'en-US', 'en_GB'."""
    return lang.replace("_", "-").split("-")[0].lower()


def _config_key(result: ResultFile, group_by: str) -> tuple:
    """What makes two result files the same configuration (seeds aside)."""
    run = result.run
    key = (run["strategy"], json.dumps(run.get("resolved_strategy"), sort_keys=True), run["text_model"],
           run["vision_model"], round(float(run["percent_trainable"]), 6),
           json.dumps(run.get("train_data"), sort_keys=True))
    return key + ((run["name"],) if group_by == "run" else ())


def _group(results: list[ResultFile], group_by: str) -> list[list[ResultFile]]:
    """Result files grouped into configurations, in order of first appearance; a seed twice is an error."""
    groups: dict[tuple, list[ResultFile]] = {}
    for r in results:
        members = groups.setdefault(_config_key(r, group_by), [])
        twin = next((m for m in members if m.run["seed"] == r.run["seed"]), None)
        if twin is not None:
            hint = ("" if group_by == "run"
                    else " If they are different runs (other hyperparameters), pass --group-by run.")
            raise ResultFileError(
                f"{twin.path} and {r.path}: same configuration ({r.run['strategy']}, {r.run['text_model']} + "
                f"{r.run['vision_model']}) and same seed ({r.run['seed']}); seeds of one configuration must "
                f"differ.{hint}")
        members.append(r)
    return list(groups.values())


def _labels(groups: list[list[ResultFile]]) -> list[str]:
    """A unique, readable row label per configuration: its run name if shared, else its strategy; namesakes
    get what tells them apart (towers, then trainable %, e.g. two LoRA ranks), numbers if nothing does."""
    labels = []
    for members in groups:
        names = {m.run["name"] for m in members}
        labels.append(names.pop() if len(names) == 1 else members[0].run["strategy"])
    details = (lambda run: f"{run['text_model']} + {run['vision_model']}",
               lambda run: f"{float(run['percent_trainable']):.2f} % trained")
    for detail in details:
        for label, rows in _namesakes(labels).items():
            told = [detail(groups[i][0].run) for i in rows]
            if len(set(told)) > 1:
                for i, d in zip(rows, told):
                    labels[i] = f"{label} ({d})"
    for label, rows in _namesakes(labels).items():
        for k, i in enumerate(rows, 1):
            labels[i] = f"{label} #{k}"
    return labels


def _namesakes(labels: list[str]) -> dict[str, list[int]]:
    """Each label that more than one row carries, with the indices of those rows."""
    return {label: [i for i, lab in enumerate(labels) if lab == label]
            for label in dict.fromkeys(labels) if labels.count(label) > 1}


def _ordered_languages(tables: list[dict]) -> list[str]:
    """Languages in order of first appearance across files."""
    out: list[str] = []
    for t in tables:
        out.extend(lang for lang in t if lang not in out)
    return out


def _only(table: dict | None, languages: list[str] | None) -> dict | None:
    """``table`` restricted to ``languages`` (None: all); None when nothing is left."""
    if table is None or languages is None:
        return table
    kept = {lang: v for lang, v in table.items() if lang in languages}
    return kept or None


def _mean_groups(languages: list[str], train_languages: list[str], all_mean: bool,
                 tiers: dict[str, list[str]]) -> dict[str, list[str]]:
    """Mean columns -> the languages they may average: all, those not trained on, then each resource tier's."""
    trained = {_base_language(t) for t in train_languages}
    unseen = [lang for lang in languages if _base_language(lang) not in trained]
    groups = {"mean (all)": languages} if all_mean else {}
    if unseen and (not all_mean or len(unseen) < len(languages)):
        groups[f"mean (non-{'/'.join(train_languages)})"] = unseen
    # Tiers leave the trained languages out too: English would otherwise lift its tier by its training.
    groups.update({tier: [lang for lang in langs if lang in unseen] for tier, langs in tiers.items()})
    return {name: langs for name, langs in groups.items() if langs}


def _build_table(name: str, title: str, groups: list[list[ResultFile]], labels: list[str], keys: list[str],
                 select, train_languages: list[str], baseline_index: int | None, notes: list[str],
                 all_mean: bool = True, tiers=lambda languages: {}) -> Table | None:
    """Mean ± std per configuration over its files, with mean columns and Δ rows; None if no file has the data.

    Each row's mean columns average the languages that row has; ``row_languages`` and a note say which
    when that is fewer than the column's. ``tiers(languages)`` gives the tier columns (name -> languages).
    """
    used = [(label, [m for m in members if select(m) is not None], members)
            for label, members in zip(labels, groups)]
    used = [(label, files, members) for label, files, members in used if files]
    if not used:
        return None
    per_file = [select(f) for _, files, _ in used for f in files]
    languages = _ordered_languages(per_file)
    mean_langs = _mean_groups(languages, train_languages, all_mean, tiers(languages))
    columns = pd.MultiIndex.from_tuples([(lang, k) for lang in languages + list(mean_langs) for k in keys],
                                        names=["group", "metric"])
    means, stds, rows, row_languages = [], [], [], {}
    for label, files, members in used:
        file_langs = [sorted(select(f)) for f in files]
        if any(fl != file_langs[0] for fl in file_langs):
            raise ResultFileError(
                f"{title}: the seeds of '{label}' cover different languages: "
                + "; ".join(f"{f.path}: {', '.join(fl)}" for f, fl in zip(files, file_langs)))
        has = select(files[0])
        row_languages[label] = {group: [lang for lang in langs if lang in has] for group, langs in mean_langs.items()}
        missing = [lang for lang in languages if lang not in has]
        if any(row_languages[label][group] != langs for group, langs in mean_langs.items()):
            notes.append(f"{title}: {label} lacks {', '.join(missing)}; its mean columns average the languages "
                         "it has.")
        values = np.full((len(files), len(columns)), np.nan)
        for i, f in enumerate(files):
            table = select(f)
            for j, (group, key) in enumerate(columns):
                langs = row_languages[label].get(group, [group] if group in table else [])
                if langs:
                    values[i, j] = np.mean([table[lang][key] for lang in langs])
        means.append(values.mean(axis=0))
        stds.append(values.std(axis=0, ddof=1) if len(files) > 1 else np.full(len(columns), np.nan))
        run = files[0].run
        rows.append({"run": label, "strategy": run["strategy"], "text_model": run["text_model"],
                     "vision_model": run["vision_model"], "percent_trainable": float(run["percent_trainable"]),
                     "n": len(files), "seeds": [f.run["seed"] for f in files],
                     "configuration_files": len(members)})
    index = pd.Index([r["run"] for r in rows], name="run")
    mean = pd.DataFrame(np.array(means), index=index, columns=columns)
    std = pd.DataFrame(np.array(stds), index=index, columns=columns)
    delta = None
    baseline_label = labels[baseline_index] if baseline_index is not None else None
    if baseline_label is not None:
        if baseline_label in mean.index:
            delta = mean.drop(index=baseline_label) - mean.loc[baseline_label]
        else:
            notes.append(f"{title}: the baseline '{baseline_label}' has no such data; no Δ rows.")
    return Table(name, title, pd.DataFrame(rows).set_index("run"), mean, std, delta, languages, mean_langs,
                 row_languages)


def _find_baseline(baseline: str, groups: list[list[ResultFile]], labels: list[str]) -> int:
    """The configuration named by ``baseline``: a row label, else a run name, else a strategy."""
    tests = [lambda i: labels[i] == baseline,
             lambda i: any(m.run["name"] == baseline for m in groups[i]),
             lambda i: groups[i][0].run["strategy"] == baseline]
    for test in tests:
        hits = [i for i in range(len(groups)) if test(i)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ResultFileError(f"--baseline {baseline!r} matches several rows: "
                                  f"{', '.join(labels[i] for i in hits)}; name one of them")
    raise ResultFileError(f"--baseline {baseline!r} matches no run name or strategy; rows: {', '.join(labels)}; "
                          f"strategies: {', '.join(sorted({g[0].run['strategy'] for g in groups}))}")


def _check_one_test_set(results: list[ResultFile]) -> tuple[str, str]:
    """The (eval set, protocol) all files share, or an error listing the files per set."""
    by_set: dict[tuple[str, str], list[str]] = {}
    for r in results:
        by_set.setdefault((r.data["eval_set"], r.data["protocol"]), []).append(str(r.path))
    if len(by_set) > 1:
        listing = "; ".join(f"{s} / {p}: {', '.join(files)}" for (s, p), files in by_set.items())
        raise ResultFileError("result files of more than one eval set / protocol; a table compares runs on one "
                              f"test set, so make one report per set (build_sets_report does) ({listing})")
    return next(iter(by_set))
