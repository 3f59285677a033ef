"""Paper-style tables and charts (Table 2 of LilT) from ``mlilt eval`` result files.

A report reads result JSON files only: it never imports torch or model code.

    mlilt report results/*.json --baseline clip --out reports/xtd10
    # -> reports/xtd10.md, reports/xtd10.csv, reports/xtd10.tex, reports/xtd10.png

    >>> from mlilt.report import build_report, load_results, write_report
    >>> report = build_report(load_results(["a.json", "b.json"]), baseline="clip", metric="R@1")
    >>> report.table("retrieval").mean   # DataFrame: rows = runs, columns = (language, TR@1 | IR@1)
    >>> write_report(report, "reports/xtd10")

Rows are configurations (strategy, models, trainable %, training data, eval set, protocol); result
files of one configuration that differ only in seed are shown as mean ± sample standard deviation
with n. Columns are every language found in the results (in order of first appearance), then the
mean over all languages and over the languages not trained on (default: all but English), each
computed over the languages every file has. A Δ row per run gives its difference of means to the
baseline. The optional text-only probe (``text_probe``) is a second table in the same outputs.
Result files of more than one eval set or protocol in one call are an error: a table compares runs
on one test set.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

RECALL_KEYS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")
PROBE_KEYS = ("en->x@1", "x->en@1")
METRICS = ("R@1", "R@5", "R@10", "mean")
# Fields of a result file the report needs; dotted paths into the JSON object.
REQUIRED_FIELDS = ("mlilt_version", "task", "eval_set", "protocol", "results", "run", "run.name", "run.strategy",
                   "run.text_model", "run.vision_model", "run.percent_trainable", "run.seed")
OUTPUT_SUFFIXES = (".md", ".csv", ".tex", ".png")


class ResultFileError(ValueError):
    """A result file that cannot be read or does not follow the result schema."""


# --------------------------------------------------------------------------------------------- loading

@dataclasses.dataclass(frozen=True)
class ResultFile:
    """One ``mlilt eval`` result file, validated."""

    path: Path
    data: dict

    @property
    def run(self) -> dict:
        return self.data["run"]

    @property
    def results(self) -> dict:
        return self.data["results"]

    @property
    def text_probe(self) -> dict | None:
        return self.data.get("text_probe")


def _field(data: dict, dotted: str):
    """The value at a dotted path, or raise KeyError naming the first missing part."""
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _percent(path: Path, where: str, value) -> float:
    """A percentage (0–100) or a ResultFileError naming the file and field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ResultFileError(f"{path}: field '{where}' must be a number, got {value!r}")
    if not 0 <= value <= 100:
        raise ResultFileError(f"{path}: field '{where}' = {value} is not a percentage in [0, 100]")
    return float(value)


def _check_metrics(path: Path, field: str, table, keys: tuple[str, ...]) -> None:
    """Every language entry of ``table`` holds every key in ``keys`` as a percentage."""
    if not isinstance(table, dict) or not table:
        raise ResultFileError(f"{path}: field '{field}' must be a non-empty object of languages, got {table!r}")
    for lang, metrics in table.items():
        if not isinstance(metrics, dict):
            raise ResultFileError(f"{path}: field '{field}.{lang}' must be an object, got {metrics!r}")
        for key in keys:
            if key not in metrics:
                raise ResultFileError(f"{path}: missing field '{field}.{lang}.{key}'")
            _percent(path, f"{field}.{lang}.{key}", metrics[key])


def load_result(path: str | Path) -> ResultFile:
    """Read and validate one result file; errors name the file and the field."""
    path = Path(path)
    if path.is_dir():
        raise ResultFileError(f"{path}: is a directory; pass the result JSON files")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such result file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultFileError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for dotted in REQUIRED_FIELDS:
        try:
            _field(data, dotted)
        except KeyError:
            raise ResultFileError(f"{path}: missing field '{dotted}'") from None
    if data["task"] != "retrieval":
        raise ResultFileError(f"{path}: field 'task' is {data['task']!r}; mlilt report reads 'retrieval' results")
    for dotted in ("eval_set", "protocol", "run.name", "run.strategy", "run.text_model", "run.vision_model"):
        if not isinstance(_field(data, dotted), str) or not _field(data, dotted):
            raise ResultFileError(f"{path}: field '{dotted}' must be a non-empty string, got {_field(data, dotted)!r}")
    _percent(path, "run.percent_trainable", data["run"]["percent_trainable"])
    seed = data["run"]["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ResultFileError(f"{path}: field 'run.seed' must be an integer or null, got {seed!r}")
    _check_metrics(path, "results", data["results"], RECALL_KEYS)
    if data.get("text_probe") is not None:
        _check_metrics(path, "text_probe", data["text_probe"], PROBE_KEYS)
    return ResultFile(path, data)


def load_results(paths) -> list[ResultFile]:
    """Read and validate result files, in the order given."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ResultFileError("no result files given")
    seen = set()
    for p in paths:
        if p.resolve() in seen:
            raise ResultFileError(f"{p}: given twice")
        seen.add(p.resolve())
    return [load_result(p) for p in paths]


# --------------------------------------------------------------------------------------------- tables

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


def _mean_groups(languages: list[str], per_file: list[dict], train_languages: list[str],
                 all_mean: bool) -> dict[str, list[str]]:
    """Mean columns -> the languages they average (only languages every file has): all, and those not trained on."""
    common = [lang for lang in languages if all(lang in t for t in per_file)]
    trained = {_base_language(t) for t in train_languages}
    unseen = [lang for lang in common if _base_language(lang) not in trained]
    groups = {"mean (all)": common} if all_mean else {}
    if unseen and (not all_mean or len(unseen) < len(common)):
        groups[f"mean (non-{'/'.join(train_languages)})"] = unseen
    return {name: langs for name, langs in groups.items() if langs}


def _build_table(name: str, title: str, groups: list[list[ResultFile]], labels: list[str], keys: list[str],
                 select, train_languages: list[str], baseline_index: int | None, notes: list[str],
                 all_mean: bool = True) -> Table | None:
    """Mean ± std per configuration over its files, with mean columns and Δ rows; None if no file has the data."""
    used = [(label, [m for m in members if select(m) is not None], members)
            for label, members in zip(labels, groups)]
    used = [(label, files, members) for label, files, members in used if files]
    if not used:
        return None
    per_file = [select(f) for _, files, _ in used for f in files]
    languages = _ordered_languages(per_file)
    mean_langs = _mean_groups(languages, per_file, train_languages, all_mean)
    common = [lang for lang in languages if all(lang in t for t in per_file)]
    if len(common) < len(languages):
        notes.append(f"{title}: not every file has every language; the mean columns average only "
                     f"languages all files have ({', '.join(common) or 'none'}).")
    columns = pd.MultiIndex.from_tuples([(lang, k) for lang in languages + list(mean_langs) for k in keys],
                                        names=["group", "metric"])
    means, stds, rows = [], [], []
    for label, files, members in used:
        file_langs = [sorted(select(f)) for f in files]
        if any(fl != file_langs[0] for fl in file_langs):
            raise ResultFileError(
                f"{title}: the seeds of '{label}' cover different languages: "
                + "; ".join(f"{f.path}: {', '.join(fl)}" for f, fl in zip(files, file_langs)))
        values = np.full((len(files), len(columns)), np.nan)
        for i, f in enumerate(files):
            table = select(f)
            for j, (group, key) in enumerate(columns):
                langs = mean_langs.get(group, [group])
                if all(lang in table for lang in langs):
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
    return Table(name, title, pd.DataFrame(rows).set_index("run"), mean, std, delta, languages, mean_langs)


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
                              f"test set, so make one report per set ({listing})")
    return next(iter(by_set))


def build_report(results: list[ResultFile], *, baseline: str | None = None, metric: str = "R@1",
                 group_by: str = "config", train_languages=("en",)) -> Report:
    """The retrieval table (and the text-probe table when present) of validated result files."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if group_by not in ("config", "run"):
        raise ValueError(f"group_by must be 'config' or 'run', got {group_by!r}")
    if not results:
        raise ResultFileError("no result files given")
    train_languages = list(train_languages)
    eval_set, protocol = _check_one_test_set(results)
    groups = _group(results, group_by)
    labels = _labels(groups)
    baseline_index = _find_baseline(baseline, groups, labels) if baseline else None
    keys = ["mean"] if metric == "mean" else [f"TR@{metric[2:]}", f"IR@{metric[2:]}"]
    notes: list[str] = []
    tables = [_build_table("retrieval", f"Image-text retrieval, {metric} (%)", groups, labels, keys,
                           lambda r: r.results, train_languages, baseline_index, notes),
              # The probe's mean leaves the trained languages out: en->en retrieval is trivially ~100.
              _build_table("text_probe", "Text-only cross-lingual retrieval probe, R@1 (%)", groups, labels,
                           list(PROBE_KEYS), lambda r: r.text_probe, train_languages, baseline_index, notes,
                           all_mean=False)]
    notes.extend(_leakage_notes(results))
    sizes = {r.data.get("num_images") for r in results}
    if len(sizes) > 1:
        counts = ", ".join(map(str, sorted(sizes, key=str)))
        notes.append(f"the files were scored on different numbers of images ({counts}); "
                     "their recalls are not strictly comparable (e.g. leakage exclusion).")
    return Report(tables=[t for t in tables if t is not None], files=results, eval_set=eval_set, protocol=protocol,
                  metric=metric, baseline=labels[baseline_index] if baseline_index is not None else None,
                  train_languages=train_languages, group_by=group_by,
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  mlilt_version=_mlilt_version(), notes=notes)


def headline(results: list[ResultFile], train_languages=("en",)) -> str:
    """One line of what a comparison shows: each row's mean recall in unseen and in trained languages."""
    table = build_report(results, metric="mean", train_languages=train_languages).table("retrieval")
    columns = [g for g in table.mean_languages if g != "mean (all)"]
    columns += [lang for lang in train_languages if lang in table.languages]

    def cell(run: str, group: str) -> str:
        mean, std = table.mean.at[run, (group, "mean")], table.std.at[run, (group, "mean")]
        return f"{mean:.1f}" + ("" if math.isnan(std) else f" ± {std:.1f}")

    parts = [f"{group}: " + ", ".join(f"{run} {cell(run, group)}" for run in table.mean.index) for group in columns]
    seeds = sorted({int(n) for n in table.rows["n"]})
    return (f"mean recall (R@1/5/10, both directions, %; n = {'/'.join(map(str, seeds))} seed(s)) -- "
            + "; ".join(parts))


def _leakage_notes(results: list[ResultFile]) -> list[str]:
    """A warning for each file whose test images overlap its training data and were not excluded."""
    notes = []
    for r in results:
        leak = r.data.get("leakage") or {}
        if leak.get("overlap") and not leak.get("excluded"):
            notes.append(f"WARNING {r.path}: {leak['overlap']} test images overlap the training data of "
                         f"run '{r.run['name']}' and were not excluded.")
    return notes


# --------------------------------------------------------------------------------------------- rendering

def _fmt(value: float, decimals: int, sign: bool = False) -> str:
    """A number for display; '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _show_models(table: Table) -> bool:
    return table.rows[["text_model", "vision_model"]].drop_duplicates().shape[0] > 1


def _display_rows(table: Table, decimals: int, pm: str, delta_label) -> tuple[list[str], list[list[str]], int]:
    """Header cells, body cells and the index of the first Δ row (len(body) when none) of one table."""
    show_models = _show_models(table)
    lead = ["run", "strategy"] + (["text model", "vision model"] if show_models else []) + ["trainable %", "n"]
    body = []
    for label, row in table.rows.iterrows():
        cells = [label, row["strategy"]] + ([row["text_model"], row["vision_model"]] if show_models else [])
        cells += [f"{row['percent_trainable']:.2f}", str(row["n"])]
        for col in table.mean.columns:
            m, s = table.mean.at[label, col], table.std.at[label, col]
            cells.append(_fmt(m, decimals) if math.isnan(s) else pm(_fmt(m, decimals), _fmt(s, decimals)))
        body.append(cells)
    first_delta = len(body)
    if table.delta is not None:
        for label, row in table.delta.iterrows():
            cells = [delta_label(label), ""] + (["", ""] if show_models else []) + ["", ""]
            body.append(cells + [_fmt(v, decimals, sign=True) for v in row.to_numpy()])
    return lead, body, first_delta


def _sources(report: Report) -> list[list[str]]:
    """One provenance line per result file."""
    rows = []
    for r in report.files:
        run, leak, settings = r.run, r.data.get("leakage") or {}, r.data.get("settings") or {}
        rows.append([str(r.path), run["name"], run["strategy"], run["text_model"], run["vision_model"],
                     f"{float(run['percent_trainable']):.2f}", str(run["seed"]), str(run.get("checkpoint", "")),
                     str(r.data.get("num_images", "")), str(leak.get("overlap", "")),
                     str(settings.get("precision", "")), _device(settings), str(r.data["mlilt_version"]),
                     str(r.data.get("created", ""))])
    return rows


def _device(settings: dict) -> str:
    """``cpu (AMD EPYC …)``; older result files, without ``device_name``, give the bare device."""
    device, name = settings.get("device", ""), settings.get("device_name")
    return f"{device} ({name})" if name else str(device)


SOURCE_HEADER = ["file", "run", "strategy", "text model", "vision model", "trainable %", "seed", "checkpoint",
                 "images", "leakage overlap", "precision", "device", "mlilt (eval)", "evaluated"]


def _summary_lines(report: Report) -> list[str]:
    """Provenance and reading notes, one line each."""
    metric = report.metric + (" (per language, the mean of TR/IR@1/5/10)" if report.metric == "mean" else "")
    lines = [f"eval set: {report.eval_set}; protocol: {report.protocol}; metric: {metric}; "
             f"TR = image→text, IR = text→image; values in %",
             f"made by mlilt report {report.mlilt_version} on {report.created} from {len(report.files)} result file(s)",
             f"rows: one per configuration (grouped by {report.group_by}); files differing only in seed are shown as "
             "mean ± sample standard deviation (n-1) over n seeds",
             f"baseline: {report.baseline}; Δ rows = difference of means to the baseline" if report.baseline
             else "baseline: none (pass --baseline for Δ rows)",
             f"languages trained on: {', '.join(report.train_languages)}"]
    for t in report.tables:
        for name, langs in t.mean_languages.items():
            lines.append(f"{t.name}: '{name}' averages {', '.join(langs)}")
    return lines + report.notes


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], body: list[list[str]], numeric_from: int) -> list[str]:
    """A GitHub Markdown table; columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in [header, align] + body]


def render_markdown(report: Report, decimals: int = 1) -> str:
    """The report as Markdown: tables, then provenance."""
    out = [f"# {report.eval_set} ({report.protocol}): {report.metric}", ""]
    for t in report.tables:
        lead, body, _ = _display_rows(t, decimals, lambda m, s: f"{m} ± {s}",
                                      lambda label: f"Δ {label} − {report.baseline}")
        header = lead + [f"{g} {k}" for g, k in t.mean.columns]
        out += [f"## {t.title}", ""] + _md_table(header, body, len(lead) - 2) + [""]
    out += ["## Provenance", ""] + [f"- {line}" for line in _summary_lines(report)] + [""]
    out += _md_table(SOURCE_HEADER, _sources(report), len(SOURCE_HEADER)) + [""]
    return "\n".join(out)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text) -> str:
    """Escape LaTeX's special characters; '->' becomes an arrow."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text)).replace("->", r"$\rightarrow$")


def render_latex(report: Report, decimals: int = 1) -> str:
    """The report as LaTeX (booktabs; ``\\usepackage{booktabs}``), provenance in comments."""
    out = [f"% {line}" for line in _summary_lines(report)]
    out += ["% files:"] + [f"%   {' | '.join(row)}" for row in _sources(report)]
    for t in report.tables:
        lead, body, first_delta = _display_rows(
            t, decimals, lambda m, s: f"{m}\\,{{\\scriptsize$\\pm${s}}}",
            lambda label: f"$\\Delta$ {_tex(label)} $-$ {_tex(report.baseline)}")
        groups = list(dict.fromkeys(g for g, _ in t.mean.columns))
        width = len(t.mean.columns) // len(groups)
        spec = "l" * (len(lead) - 2) + "r" * (2 + len(t.mean.columns))
        top = [""] * len(lead) + [f"\\multicolumn{{{width}}}{{c}}{{{_tex(g)}}}" if width > 1 else _tex(g)
                                  for g in groups]
        rules = "".join(f"\\cmidrule(lr){{{len(lead) + 1 + i * width}-{len(lead) + (i + 1) * width}}}"
                        for i in range(len(groups)))
        sub = [_tex(c) for c in lead] + [_tex(k) for _, k in t.mean.columns]
        out += ["", "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{_tex(t.title)}: "
                f"{_tex(report.eval_set)} ({_tex(report.protocol)})}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        if width > 1:
            out += [" & ".join(top) + " \\\\", rules]
        else:
            sub = [_tex(c) for c in lead] + [_tex(g) for g in groups]
        out += [" & ".join(sub) + " \\\\", "\\midrule"]
        for i, cells in enumerate(body):
            if i == first_delta:
                out.append("\\midrule")
            escaped = [c if (i >= first_delta and j == 0) or j >= len(lead) else _tex(c) for j, c in enumerate(cells)]
            escaped = [c.replace("-", "$-$", 1) if j >= len(lead) and c.startswith("-") else c
                       for j, c in enumerate(escaped)]
            out.append(" & ".join(escaped) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def report_frame(report: Report) -> pd.DataFrame:
    """All tables in one numeric frame: a row per run (and per Δ), '<group> <metric>' and '... std' columns."""
    frames = []
    for t in report.tables:
        flat = [f"{g} {k}" for g, k in t.mean.columns]
        rows = t.rows.drop(columns=["seeds", "configuration_files"]).reset_index()
        values = pd.DataFrame(t.mean.to_numpy(), columns=flat)
        stds = pd.DataFrame(t.std.to_numpy(), columns=[f"{c} std" for c in flat])
        interleaved = [c for pair in zip(flat, stds.columns) for c in pair]
        part = pd.concat([rows, pd.concat([values, stds], axis=1)[interleaved]], axis=1)
        part.insert(0, "kind", "run")
        if t.delta is not None:
            delta = pd.DataFrame(t.delta.to_numpy(), columns=flat)
            delta.insert(0, "run", list(t.delta.index))
            delta.insert(0, "kind", "delta")
            delta["baseline"] = report.baseline
            part = pd.concat([part, delta], ignore_index=True)
        part.insert(0, "table", t.name)
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True)
    frame["n"] = frame["n"].astype("Int64")  # Δ rows have no n; keep the counts integers
    value_cols = [c for c in frame.columns if c not in ("table", "kind", "run", "baseline", "strategy", "text_model",
                                                      "vision_model", "percent_trainable", "n")]
    lead = [c for c in ("table", "kind", "run", "baseline", "strategy", "text_model", "vision_model",
                        "percent_trainable", "n") if c in frame.columns]
    return frame[lead + value_cols]


def render_csv(report: Report) -> str:
    """The numeric frame as CSV, provenance as leading '#' lines (read with ``pd.read_csv(path, comment='#')``)."""
    head = "".join(f"# {line}\n" for line in _summary_lines(report))
    head += "".join(f"# file: {' | '.join(row)}\n" for row in _sources(report))
    return head + report_frame(report).to_csv(index=False)


def plot_table(report: Report, table: Table, path: Path) -> None:
    """A PNG with one bar-chart panel per language (and per mean column): bars = runs, error bars = std."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise RuntimeError("the PNG chart needs matplotlib: pip install matplotlib (or pass --no-plot)") from err
    groups = list(dict.fromkeys(g for g, _ in table.mean.columns))
    keys = list(dict.fromkeys(k for _, k in table.mean.columns))
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    # Own Figure + Agg canvas, not pyplot: no global backend switch, no GUI, safe in any process.
    fig = Figure(figsize=(3.3 * ncols, 2.7 * nrows + 1.0 + 0.22 * len(table.mean.index)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    runs = list(table.mean.index)
    width = 0.8 / len(runs)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    # One y-range for every panel, fitted to the data, so that languages compare by eye.
    highest = np.nanmax((table.mean + table.std.fillna(0)).to_numpy(dtype=float), initial=0.0)
    top = min(100.0, max(1.0, 1.15 * float(highest)))
    for ax, group in zip(axes, groups):
        for i, run in enumerate(runs):
            means = [table.mean.at[run, (group, k)] for k in keys]
            stds = [table.std.at[run, (group, k)] for k in keys]
            x = np.arange(len(keys)) + (i - (len(runs) - 1) / 2) * width
            ax.bar(x, means, width, color=colours[i],
                   label=f"{run} ({table.rows.at[run, 'strategy']}, {table.rows.at[run, 'percent_trainable']:.2f}% "
                         f"trained, n={table.rows.at[run, 'n']})")
            spread = [(xi, m, s) for xi, m, s in zip(x, means, stds) if not math.isnan(s)]  # n = 1: no bar
            if spread:
                xs, ms, ss = zip(*spread)
                ax.errorbar(xs, ms, yerr=ss, fmt="none", ecolor="black", capsize=2, linewidth=1)
        ax.set_title(group)
        ax.set_xticks(np.arange(len(keys)), keys)
        ax.set_ylim(0, top)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    axes[0].set_ylabel("%")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(2, len(runs)), fontsize="small")
    spread = ("bars = mean over seeds, error bars = sample std" if (table.rows["n"] > 1).any()
              else "one seed per run: no error bars")
    fig.suptitle(f"{table.title}: {report.eval_set} ({report.protocol})\n"
                 f"mlilt {report.mlilt_version}, {report.created}; {spread}", fontsize="medium")
    metadata = {"Software": f"mlilt report {report.mlilt_version}", "Title": table.title,
                "Description": "\n".join(_summary_lines(report)),
                "Source": "; ".join(str(r.path) for r in report.files)}
    fig.savefig(path, dpi=110, metadata=metadata)


def write_gallery(report: Report, path: Path) -> Path | None:
    """The retrieval gallery PNG: rows = recorded caption x language, columns = runs (first seed of each
    configuration), each run's top-k images with the correct one framed; None when no file recorded one."""
    from mlilt.sheets import gallery_image

    groups = _group(report.files, report.group_by)
    firsts = [min(g, key=lambda r: (r.run["seed"] is None, r.run["seed"] or 0)) for g in groups]
    columns = [(f"{label} (seed {r.run['seed']})" if len(g) > 1 else label, r.data.get("gallery"))
               for label, g, r in zip(_labels(groups), groups, firsts)]
    recorded = [g for _, g in columns if g]
    if not recorded:
        return None
    images = {name: p for g in recorded for name, p in g.get("images", {}).items()}
    k = max(g.get("k", 5) for g in recorded)
    per_run = [{q["target"]: q for q in (g or {}).get("queries", [])} for _, g in columns]
    rows = []
    for query in recorded[0]["queries"]:  # every run was scored on the same images, so the same targets
        langs = list(dict.fromkeys(lang for q in per_run for lang in q.get(query["target"], {}).get("top", {})))
        for i, lang in enumerate(langs):
            caption = next(q[query["target"]]["captions"][lang] for q in per_run
                           if lang in q.get(query["target"], {}).get("captions", {}))
            rows.append({"label": f"[{lang}] {caption}", "sublabel": f"image {query['target']}" if i == 0 else "",
                         "target": query["target"], "first": i == 0,
                         "top": [[name for name, _ in q.get(query["target"], {}).get("top", {}).get(lang, [])]
                                 for q in per_run]})
    title = (f"Retrieval gallery: {report.eval_set} ({report.protocol}), top {k} images per caption and run; "
             f"green frame = the caption's own image\n{recorded[0].get('rule', '')}")
    gallery_image(title, [c for c, _ in columns], rows, images, k).save(path)
    return path


def output_prefix(out: str | Path) -> Path:
    """``reports/NAME`` from ``reports/NAME`` or ``reports/NAME.md`` (any output suffix)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix in OUTPUT_SUFFIXES else out


def write_report(report: Report, out: str | Path, *, decimals: int = 1, plot: bool = True) -> list[Path]:
    """Write NAME.md, NAME.csv, NAME.tex and NAME.png (plus NAME.text_probe.png and, when the result files
    recorded one, NAME.gallery.png linked from NAME.md); return the paths."""
    prefix = output_prefix(out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written = []
    gallery = write_gallery(report, prefix.with_name(prefix.name + ".gallery.png")) if plot else None
    markdown = render_markdown(report, decimals)
    if gallery is not None:
        markdown += (f"\n## Retrieval gallery\n\nWhat each run retrieves for a few test captions chosen by a fixed "
                     f"rule: [{gallery.name}]({gallery.name})\n\n![retrieval gallery]({gallery.name})\n")
    for suffix, text in ((".md", markdown), (".csv", render_csv(report)),
                         (".tex", render_latex(report, decimals))):
        path = prefix.with_name(prefix.name + suffix)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if plot:
        for t in report.tables:
            path = prefix.with_name(prefix.name + (".png" if t.name == "retrieval" else f".{t.name}.png"))
            plot_table(report, t, path)
            written.append(path)
    return written + ([gallery] if gallery is not None else [])


# --------------------------------------------------------------------------------------------- parts and pairs

def protocol_view(results: list[ResultFile], protocol: str) -> list[ResultFile]:
    """The files' numbers for one part of an averaged protocol (an emoji-XTD style) as result files of it."""
    out = []
    for r in results:
        parts = r.data.get("protocols") or {}
        if protocol not in parts:
            raise ResultFileError(f"{r.path}: missing field 'protocols.{protocol}' (this file has "
                                  f"{', '.join(parts) or 'no per-protocol results'})")
        data = {k: v for k, v in r.data.items() if k not in ("protocols", "averaged_over", "text_probe")}
        data.update(parts[protocol], protocol=protocol)
        _check_metrics(r.path, f"protocols.{protocol}.results", data["results"], RECALL_KEYS)
        out.append(ResultFile(r.path, data))
    return out


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


def render_paired_markdown(frame: pd.DataFrame, baseline: str, what: str, decimals: int = 1) -> list[str]:
    """A Markdown table of :func:`paired_differences`."""
    header = ["run", "strategy", "seeds × languages", f"Δ {what} − {baseline}", "95 % CI"]
    body = [[label, row["strategy"], f"{row['seeds']} × {row['languages']} = {row['n']}",
             _fmt(row["delta"], decimals, sign=True),
             f"[{_fmt(row['ci_low'], decimals, sign=True)}, {_fmt(row['ci_high'], decimals, sign=True)}]"]
            for label, row in frame.iterrows()]
    return _md_table(header, body, 2)


def plot_strategy_summary(table: Table, path: Path, *, english: str = "en", title: str = "") -> None:
    """Two bars per row -- mean recall in English and in the other languages -- with seed std as error bars.

    ``table`` is a retrieval table built with ``metric="mean"`` (one 'mean' value per language).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    other = next(g for g, _ in table.mean.columns if str(g).startswith("mean (non-"))
    runs = list(table.mean.index)
    fig = Figure(figsize=(7.5, 1.6 + 0.45 * len(runs)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    y = np.arange(len(runs))
    for offset, group, name, colour in ((-0.2, english, "English (trained)", "C0"),
                                        (0.2, other, f"other languages ({other[6:-1]})", "C1")):
        means = table.mean[(group, "mean")].to_numpy(dtype=float)
        stds = np.nan_to_num(table.std[(group, "mean")].to_numpy(dtype=float))
        ax.barh(y + offset, means, 0.38, xerr=stds, color=colour, label=name, capsize=2)
        for yi, m, s in zip(y + offset, means, stds):
            ax.text(m + s, yi, f"  {m:.1f}", va="center", fontsize="x-small")
    ax.set_yticks(y, [f"{r} ({table.rows.at[r, 'percent_trainable']:.2f}%)" for r in runs])
    ax.invert_yaxis()
    ax.set_xlabel("mean recall (TR/IR @1/5/10), % — bars: mean over seeds, whiskers: std")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)  # room for the value labels
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize="small")
    ax.set_title(title or table.title, fontsize="medium")
    fig.savefig(path, dpi=110, metadata={"Software": f"mlilt report {_mlilt_version()}", "Title": title})


# --------------------------------------------------------------------------------------------- CLI

def add_report_parser(subparsers) -> None:
    """Register ``mlilt report``."""
    p = subparsers.add_parser(
        "report", help="Paper-style tables (Markdown, CSV, LaTeX) and charts (PNG) from eval result files.",
        description="Tabulate `mlilt eval` result files like the paper's Table 2: rows = runs (seeds of one "
                    "configuration as mean ± std), columns = language x TR/IR, mean over all and over untrained "
                    "languages, Δ rows to a baseline; plus the text-only probe when present.")
    p.add_argument("results", nargs="+", metavar="RESULT_JSON", help="Result files of `mlilt eval` (one eval set).")
    p.add_argument("--out", default=None, metavar="reports/NAME",
                   help="Write NAME.md, NAME.csv, NAME.tex, NAME.png; without it, print the Markdown only.")
    p.add_argument("--baseline", default=None, metavar="RUN",
                   help="Row for the Δ rows: a run name or a strategy (e.g. clip).")
    p.add_argument("--metric", choices=METRICS, default="R@1",
                   help="Recall level shown as TR/IR per language, or 'mean' (of all six recalls). Default R@1.")
    p.add_argument("--group-by", choices=("config", "run"), default="config",
                   help="config: files of one configuration that differ in seed become one row (default); "
                        "run: one row per run name.")
    p.add_argument("--train-language", action="append", default=None, metavar="LANG",
                   help="Language trained on, left out of the untrained-languages mean (repeatable; default en).")
    p.add_argument("--protocol", default=None, metavar="PART",
                   help="Tabulate one part of an averaged protocol (emoji-xtd: noto, twemoji or openmoji) "
                        "instead of the files' mean.")
    p.add_argument("--decimals", type=int, default=1, help="Decimals shown in Markdown/LaTeX (default 1).")
    p.add_argument("--no-plot", action="store_true", help="Skip the PNG chart (no matplotlib needed).")
    p.set_defaults(func=run_report)


add_subparser = add_report_parser


def run_report(args) -> int:
    """``mlilt report``: build the report, write it, print the Markdown or the written paths."""
    results = load_results(args.results)
    if args.protocol:
        results = protocol_view(results, args.protocol)
    report = build_report(results, baseline=args.baseline, metric=args.metric,
                          group_by=args.group_by, train_languages=args.train_language or ["en"])
    if args.out is not None and not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print("mlilt report: error: the PNG chart needs matplotlib: pip install matplotlib (or pass --no-plot)",
              file=sys.stderr)
        return 2
    if args.out is None:
        print(render_markdown(report, args.decimals))
        return 0
    for path in write_report(report, args.out, decimals=args.decimals, plot=not args.no_plot):
        print(path)
    for note in report.notes:
        print(note, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``mlilt report`` alone: ``python -m mlilt.report RESULT_JSON... --out reports/NAME``."""
    parser = argparse.ArgumentParser(prog="mlilt")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as err:
        print(f"mlilt report: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
