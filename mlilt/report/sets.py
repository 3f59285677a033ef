"""Reports over several eval sets (or protocols): a summary per set × resource tier and the languages side by side.

Each (eval set, protocol) keeps its own report, built exactly as a single-set one; languages are aligned across
sets by the canonical tag the result files key them by. Runs may differ between sets: a run a set lacks shows '–'.
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .build import build_report
from .languages import resource_order, select_languages, tier_groups
from .outputs import output_prefix, write_report
from .render import _fmt, _md_table, render_markdown
from .results import ResultFile, ResultFileError, language_info
from .tables import Report, _base_language, _mlilt_version, _ordered_languages


@dataclasses.dataclass
class SetsReport:
    """One report per test set, their summary per set × tier and the per-language table across sets."""

    reports: dict[str, Report]  # "xtd200 (1k)" -> that set's report
    summary: pd.DataFrame  # index (set, group), columns (run, metric): each run's mean over the group's languages
    counts: pd.Series  # index (set, group): how many languages of the set the group holds
    side_by_side: pd.DataFrame  # index language tag, columns (run, set, metric)
    languages: dict[str, dict]
    metric: str
    created: str
    mlilt_version: str
    notes: list[str]


def test_sets(results: list[ResultFile]) -> dict[str, list[ResultFile]]:
    """The files per test set, labelled 'eval set (protocol)', in order of first appearance."""
    sets: dict[str, list[ResultFile]] = {}
    for r in results:
        sets.setdefault(f"{r.data['eval_set']} ({r.data['protocol']})", []).append(r)
    return sets


def build_sets_report(results: list[ResultFile], *, baseline: str | None = None, metric: str = "R@1",
                      group_by: str = "config", train_languages=("en",),
                      languages: list[str] | None = None) -> SetsReport:
    """A report per test set and, across them, the summary per set × tier and the per-language table.

    ``languages`` (``--langs``) is resolved against all sets; each set shows those it has. Sets that share no
    language cannot be put side by side: that is an error.
    """
    sets = test_sets(results)
    info = language_info(results)
    selected = None
    if languages:
        available = _ordered_languages([t for r in results for t in (r.results, r.text_probe or {})])
        selected = select_languages(list(languages), available, info)
    reports, notes = {}, []
    for label, files in sets.items():
        own = None if selected is None else [tag for tag in selected if any(tag in f.results for f in files)]
        if own == []:
            raise ResultFileError(f"{label}: no retrieval results in the languages selected (--langs "
                                  f"{','.join(selected)}); leave its files out or choose languages it has")
        # Runs may differ per set: a set without the baseline run gets no Δ rows, not an error.
        own_baseline = baseline if baseline and _names(files, baseline) else None
        if baseline and own_baseline is None:
            notes.append(f"{label}: no run or strategy '{baseline}'; its tables have no Δ rows.")
        try:
            reports[label] = build_report(files, baseline=own_baseline, metric=metric, group_by=group_by,
                                          train_languages=train_languages, languages=own)
        except ResultFileError as err:
            raise ResultFileError(f"{label}: {err}") from None
    if baseline and len(notes) == len(sets):
        raise ResultFileError(f"--baseline {baseline!r} matches no run name or strategy in any test set; runs: "
                              + ", ".join(dict.fromkeys(r.run["name"] for r in results)))
    tables = {label: rep.table("retrieval") for label, rep in reports.items()}
    _check_shared_language(tables)
    summary, counts = _summary(tables, info, list(train_languages))
    return SetsReport(reports=reports, summary=summary, counts=counts, side_by_side=_side_by_side(tables, info),
                      languages=info, metric=metric, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      mlilt_version=_mlilt_version(), notes=notes)


def _names(files: list[ResultFile], baseline: str) -> bool:
    """Whether a run of these files is called ``baseline`` or has it as its strategy."""
    return any(baseline in (f.run["name"], f.run["strategy"]) for f in files)


def _check_shared_language(tables: dict) -> None:
    """At least one language is in two sets, else there is nothing to put side by side."""
    seen: dict[str, int] = {}
    for t in tables.values():
        for lang in t.languages:
            seen[lang] = seen.get(lang, 0) + 1
    if not any(n > 1 for n in seen.values()):
        listing = "; ".join(f"{label}: {', '.join(t.languages[:5])}{' …' if len(t.languages) > 5 else ''}"
                            for label, t in tables.items())
        raise ResultFileError(f"the test sets share no language tag, so none can be compared side by side ({listing})"
                              "; make one report per set")


def _summary(tables: dict, info: dict[str, dict], train_languages: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Per set, each run's mean over its untrained languages and over each resource tier's, with the counts."""
    trained = {_base_language(t) for t in train_languages}
    runs = list(dict.fromkeys(run for t in tables.values() for run in t.mean.index))
    keys = list(dict.fromkeys(k for t in tables.values() for _, k in t.mean.columns))
    rows, counts, index = [], [], []
    for label, t in tables.items():
        unseen = [lang for lang in t.languages if _base_language(lang) not in trained]
        groups = {f"mean (non-{'/'.join(train_languages)})": unseen} | tier_groups(unseen, info)
        for group, langs in groups.items():
            index.append((label, group))
            counts.append(len(langs))
            rows.append([_mean_over(t, run, langs, key) for run in runs for key in keys])
    index = pd.MultiIndex.from_tuples(index, names=["set", "group"])
    columns = pd.MultiIndex.from_tuples([(run, key) for run in runs for key in keys], names=["run", "metric"])
    return pd.DataFrame(rows, index=index, columns=columns), pd.Series(counts, index=index, name="languages")


def _mean_over(table, run: str, langs: list[str], key: str) -> float:
    """The run's mean over those of ``langs`` it has; NaN where it has none (or is not in this set)."""
    if run not in table.mean.index:
        return math.nan
    values = [table.mean.at[run, (lang, key)] for lang in langs]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _side_by_side(tables: dict, info: dict[str, dict]) -> pd.DataFrame:
    """A row per language of any set (by resource), a column per run × set × metric the sets hold."""
    langs = resource_order(list(dict.fromkeys(lang for t in tables.values() for lang in t.languages)), info)
    runs = list(dict.fromkeys(run for t in tables.values() for run in t.mean.index))
    columns, data = [], []
    for run in runs:
        for label, t in tables.items():
            if run not in t.mean.index:
                continue
            for key in dict.fromkeys(k for _, k in t.mean.columns):
                columns.append((run, label, key))
                data.append([t.mean.at[run, (lang, key)] if lang in t.languages else math.nan for lang in langs])
    frame = pd.DataFrame(np.array(data).T if data else None, index=pd.Index(langs, name="language"),
                         columns=pd.MultiIndex.from_tuples(columns, names=["run", "set", "metric"]))
    return frame


def _summary_rows(report: SetsReport, decimals: int) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary: a row per set × group, its language count, each run × metric."""
    header = ["set", "group", "languages"] + [f"{run} {key}" for run, key in report.summary.columns]
    body = [[label, group, str(report.counts[(label, group)])] + [_fmt(v, decimals) for v in row]
            for (label, group), row in report.summary.iterrows()]
    return header, body


def _language_rows(report: SetsReport, decimals: int) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the side-by-side table: a row per language, its name, tier and CC-100 size."""
    header = ["language", "name", "tier", "CC-100 GiB"] + [" ".join(c) for c in report.side_by_side.columns]
    body = []
    for lang, row in report.side_by_side.iterrows():
        fields = report.languages.get(lang, {})
        body.append([lang, fields.get("name") or "", "" if fields.get("tier") is None else str(fields["tier"]),
                     _fmt(fields.get("cc100_gib"), 2)] + [_fmt(v, decimals) for v in row])
    return header, body


def _provenance(report: SetsReport) -> list[str]:
    """What made the report, how to read it, its files per set and its notes, one line each."""
    files = sum(len(rep.files) for rep in report.reports.values())
    lines = [f"made by mlilt report {report.mlilt_version} on {report.created} from {files} result file(s) of "
             f"{len(report.reports)} test sets: {', '.join(report.reports)}",
             f"metric: {report.metric}; values in %; runs are each set's rows (seeds as their mean); '–' where a run "
             "or set lacks the language",
             "summary: each run's mean over those of the set's languages in the group it has (trained languages left "
             "out); 'languages' counts the set's languages in the group",
             "languages are aligned across sets by the tag the result files key them by"]
    lines += [f"files of {label}: {', '.join(str(f.path) for f in rep.files)}" for label, rep in report.reports.items()]
    return lines + report.notes


def render_sets_markdown(report: SetsReport, decimals: int = 1, links: dict[str, str] | None = None) -> str:
    """The summary per set × tier, the per-language table across sets, then each set's report."""
    title = " vs ".join(report.reports)
    out = [f"# {title}: {report.metric}", "", "## Summary per test set and resource tier", ""]
    header, body = _summary_rows(report, decimals)
    out += _md_table(header, body, 2) + [""]
    header, body = _language_rows(report, decimals)
    out += ["## Per language, side by side", "", "Languages by resource tier, then CC-100 size.", ""]
    out += _md_table(header, body, 2) + [""]
    out += ["## Provenance", ""] + [f"- {line}" for line in _provenance(report)] + [""]
    for label, rep in report.reports.items():
        link = f" ([{links[label]}]({links[label]}))" if links and label in links else ""
        # Each set's report one heading level down: its tables exactly as a single-set report shows them.
        body = render_markdown(rep, decimals).replace("\n#", "\n##")
        out += [f"## Test set {label}{link}", "", body.removeprefix("# ").split("\n", 1)[1].lstrip("\n")]
    return "\n".join(out)


def render_sets_csv(report: SetsReport) -> str:
    """Summary and per-language values in one long frame (part, set, row, run, metric, value, languages)."""
    head = "".join(f"# {line}\n" for line in _provenance(report))
    rows = [("summary", label, group, run, key, value, report.counts[(label, group)])
            for (label, group), values in report.summary.iterrows() for (run, key), value in values.items()]
    rows += [("language", label, lang, run, key, value, None)
             for lang, values in report.side_by_side.iterrows() for (run, label, key), value in values.items()]
    frame = pd.DataFrame(rows, columns=["part", "set", "row", "run", "metric", "value", "languages"])
    frame["languages"] = frame["languages"].astype("Int64")
    return head + frame.to_csv(index=False)


def set_slug(label: str) -> str:
    """'xtd200 (1k)' -> 'xtd200-1k', for file names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def write_sets_report(report: SetsReport, out: str | Path, *, decimals: int = 1, plot: bool = True) -> list[Path]:
    """NAME.md and NAME.csv (summary, side by side, each set's tables), and each set's own outputs as
    NAME.<set>-<protocol>.{md,csv,tex,png}; return the paths."""
    prefix = output_prefix(out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written, links = [], {}
    for label, rep in report.reports.items():
        own = prefix.with_name(f"{prefix.name}.{set_slug(label)}")
        written += write_report(rep, own, decimals=decimals, plot=plot)
        links[label] = own.name + ".md"
    for suffix, text in ((".md", render_sets_markdown(report, decimals, links)), (".csv", render_sets_csv(report))):
        path = prefix.with_name(prefix.name + suffix)
        path.write_text(text, encoding="utf-8")
        written.insert(0, path)
    return written
