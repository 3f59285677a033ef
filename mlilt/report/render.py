"""Rendering a report as Markdown, CSV and LaTeX, each with its provenance."""

from __future__ import annotations

import math

import pandas as pd

from .build import headline_groups
from .languages import language_label, resource_order
from .tables import Report, Table


def _fmt(value: float, decimals: int, sign: bool = False) -> str:
    """A number for display; '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _show_models(table: Table) -> bool:
    return table.rows[["text_model", "vision_model"]].drop_duplicates().shape[0] > 1


def _display_rows(table: Table, decimals: int, pm, delta_label,
                  columns=None) -> tuple[list[str], list[list[str]], int]:
    """Header cells, body cells and the index of the first Δ row (len(body) when none) of one table's
    ``columns`` (default: all)."""
    columns = list(table.mean.columns) if columns is None else columns
    show_models = _show_models(table)
    lead = ["run", "strategy"] + (["text model", "vision model"] if show_models else []) + ["trainable %", "n"]
    body = []
    for label, row in table.rows.iterrows():
        cells = [label, row["strategy"]] + ([row["text_model"], row["vision_model"]] if show_models else [])
        cells += [f"{row['percent_trainable']:.2f}", str(row["n"])]
        for col in columns:
            m, s = table.mean.at[label, col], table.std.at[label, col]
            cell = _fmt(m, decimals) if math.isnan(s) else pm(_fmt(m, decimals), _fmt(s, decimals))
            cells.append(cell + (PARTIAL if _partial(table, label, col[0]) and not math.isnan(m) else ""))
        body.append(cells)
    first_delta = len(body)
    if table.delta is not None:
        for label, row in table.delta.iterrows():
            cells = [delta_label(label), ""] + (["", ""] if show_models else []) + ["", ""]
            body.append(cells + [_fmt(row[col], decimals, sign=True) for col in columns])
    return lead, body, first_delta


PARTIAL = "*"  # marks a mean over fewer languages than its column's: the row lacks some (the notes say which)


def _partial(table: Table, label: str, group: str) -> bool:
    """Whether row ``label``'s mean column ``group`` averages fewer languages than the column does."""
    langs = table.mean_languages.get(group)
    return langs is not None and table.row_languages.get(label, {}).get(group, langs) != langs


def _partial_note(table: Table, columns) -> list[str]:
    """The line under a table that has marked cells."""
    marked = any(_partial(table, label, g) for label in table.mean.index for g, _ in columns)
    return [f"{PARTIAL} averages only the languages that row has; the notes under Provenance say which it lacks.",
            ""] if marked else []


def _sources(report: Report) -> list[list[str]]:
    """One provenance line per result file."""
    rows = []
    for r in report.files:
        run, leak, settings = r.run, r.data.get("leakage") or {}, r.data.get("settings") or {}
        rows.append([str(r.path), run["name"], run["strategy"], run["text_model"], run["vision_model"],
                     f"{float(run['percent_trainable']):.2f}", str(run["seed"]), str(run.get("checkpoint", "")),
                     str(run.get("step", "")), str(r.data.get("num_images", "")), str(leak.get("overlap", "")),
                     str(settings.get("precision", "")), _device(settings), str(r.data["mlilt_version"]),
                     str(r.data.get("created", ""))])
    return rows


def _device(settings: dict) -> str:
    """``cpu (AMD EPYC …)``; older result files, without ``device_name``, give the bare device."""
    device, name = settings.get("device", ""), settings.get("device_name")
    return f"{device} ({name})" if name else str(device)


SOURCE_HEADER = ["file", "run", "strategy", "text model", "vision model", "trainable %", "seed", "checkpoint",
                 "step", "images", "leakage overlap", "precision", "device", "mlilt (eval)", "evaluated"]


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
    if report.selected is not None:
        lines.append(f"languages selected (--langs): {', '.join(report.selected)}")
    lines.append("mean and tier columns: each row averages those of the column's languages it has (notes below "
                 "name any it lacks); tier columns leave out the trained languages")
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


def _blocks(report: Report) -> list[tuple[Table, str, list | None]]:
    """What the report shows, in order: (table, title, columns) per table section; columns None = per language.

    A report in mean recall leads with the columns its headline quotes; a table of many languages shows its
    mean and tier columns, then a row per language.
    """
    blocks = []
    retrieval = report.table("retrieval")
    if report.metric == "mean" and retrieval is not None:
        lead = [(g, "mean") for g in headline_groups(retrieval, report.train_languages)]
        blocks.append((retrieval, "Mean recall (TR/IR@1/5/10, %): the languages not trained on, and "
                       + ", ".join(report.train_languages), lead))
    for t in report.tables:
        if t.many:
            tiers = " per resource tier" if any(g.startswith("tier") for g in t.mean_languages) else ""
            blocks += [(t, f"{t.title}: summary{tiers}", t.group_columns()), (t, f"{t.title}: per language", None)]
        else:
            blocks.append((t, t.title, list(t.mean.columns)))
    return blocks


def _language_rows(report: Report, table: Table, decimals: int) -> tuple[list[str], list[list[str]]]:
    """One row per language (by resource): its name, CC-100 size, tier, images, each row's value and Δ."""
    keys = list(dict.fromkeys(k for _, k in table.mean.columns))
    header = ["language", "name", "CC-100 GiB", "tier", "images"] + [f"{run} {k}" for run in table.mean.index
                                                                      for k in keys]
    deltas = [] if table.delta is None else list(table.delta.index)
    header += [f"Δ {run} {k}" for run in deltas for k in keys]
    body = []
    for lang in resource_order(table.languages, report.languages):
        info = report.languages.get(lang, {})
        cells = [lang, info.get("name") or "", _fmt(info.get("cc100_gib"), 2)]
        cells += ["" if info.get(key) is None else str(info[key]) for key in ("tier", "images")]
        cells += [_fmt(table.mean.at[run, (lang, k)], decimals) for run in table.mean.index for k in keys]
        cells += [_fmt(table.delta.at[run, (lang, k)], decimals, sign=True) for run in deltas for k in keys]
        body.append(cells)
    return header, body


def render_markdown(report: Report, decimals: int = 1) -> str:
    """The report as Markdown: tables, then provenance."""
    out = [f"# {report.eval_set} ({report.protocol}): {report.metric}", ""]
    shown = [lang for t in report.tables if not t.many for lang in t.languages]
    if any(report.languages.get(lang, {}).get("name") for lang in shown):
        out += ["Languages: " + ", ".join(language_label(lang, report.languages) for lang in dict.fromkeys(shown))
                + ".", ""]
    for t, title, columns in _blocks(report):
        if columns is None:
            header, body = _language_rows(report, t, decimals)
            out += [f"## {title}", "", "Languages by resource tier, then CC-100 size; means over seeds (their "
                    "standard deviations are in the CSV).", ""] + _md_table(header, body, 2) + [""]
            continue
        lead, body, _ = _display_rows(t, decimals, lambda m, s: f"{m} ± {s}",
                                      lambda label: f"Δ {label} − {report.baseline}", columns)
        header = lead + [f"{g} {k}" for g, k in columns]
        out += [f"## {title}", ""] + _md_table(header, body, len(lead) - 2) + [""] + _partial_note(t, columns)
        if t.many and columns == t.group_columns():
            out += ["Languages per column: " + ", ".join(f"{g} {len(langs)}" for g, langs in t.mean_languages.items())
                    + ".", ""]
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
    for t, title, columns in _blocks(report):
        caption = f"\\caption{{{_tex(title)}: {_tex(report.eval_set)} ({_tex(report.protocol)})}}"
        if columns is None:
            header, body = _language_rows(report, t, decimals)
            out += ["", "% a row per language: needs \\usepackage{longtable}", "\\begin{longtable}{" + "ll" + "r" * (len(header) - 2) + "}", caption + " \\\\", "\\toprule",
                    " & ".join(_tex(c).replace("Δ", "$\\Delta$") for c in header) + " \\\\", "\\midrule", "\\endhead"]
            out += [" & ".join(_tex(c) if j < 2 else c.replace("-", "$-$", 1) for j, c in enumerate(cells)) + " \\\\"
                    for cells in body]
            out += ["\\bottomrule", "\\end{longtable}"]
            continue
        out += _latex_table(report, t, caption, columns, decimals)
    return "\n".join(out) + "\n"


def _latex_table(report: Report, t: Table, caption: str, columns: list, decimals: int) -> list[str]:
    """One booktabs table of ``columns`` of ``t``: a header row of groups over a row of metrics."""
    lead, body, first_delta = _display_rows(
        t, decimals, lambda m, s: f"{m}\\,{{\\scriptsize$\\pm${s}}}",
        lambda label: f"$\\Delta$ {_tex(label)} $-$ {_tex(report.baseline)}", columns)
    groups = list(dict.fromkeys(g for g, _ in columns))
    width = len(columns) // len(groups)
    spec = "l" * (len(lead) - 2) + "r" * (2 + len(columns))
    top = [""] * len(lead) + [f"\\multicolumn{{{width}}}{{c}}{{{_tex(g)}}}" if width > 1 else _tex(g)
                              for g in groups]
    rules = "".join(f"\\cmidrule(lr){{{len(lead) + 1 + i * width}-{len(lead) + (i + 1) * width}}}"
                    for i in range(len(groups)))
    sub = [_tex(c) for c in lead] + [_tex(k) for _, k in columns]
    out = ["", "\\begin{table}[t]", "\\centering", "\\small", caption, f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
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
    return out + ["\\bottomrule", "\\end{tabular}", "\\end{table}"]


def report_frame(report: Report) -> pd.DataFrame:
    """All tables in one numeric frame: a row per run (and per Δ), '<group> <metric>' and '... std' columns."""
    frames = []
    for t in report.tables:
        flat = [f"{g} {k}" for g, k in t.mean.columns]
        rows = t.rows.drop(columns=["seeds", "configuration_files"]).reset_index()
        values = pd.DataFrame(t.mean.to_numpy(), columns=flat)
        stds = pd.DataFrame(t.std.to_numpy(), columns=[f"{c} std" for c in flat])
        interleaved = [c for pair in zip(flat, stds.columns) for c in pair]
        part = pd.concat([rows.assign(kind="run"), pd.concat([values, stds], axis=1)[interleaved]], axis=1)
        if t.delta is not None:
            delta = pd.DataFrame(t.delta.to_numpy(), columns=flat)
            delta.insert(0, "run", list(t.delta.index))
            delta.insert(0, "kind", "delta")
            delta["baseline"] = report.baseline
            part = pd.concat([part, delta], ignore_index=True)
        frames.append(pd.concat([pd.DataFrame({"table": [t.name] * len(part)}), part], axis=1))
    frame = pd.concat(frames, ignore_index=True)
    frame["n"] = frame["n"].astype("Int64")  # Δ rows have no n; keep the counts integers
    described = ("table", "kind", "run", "config", "step", "baseline", "strategy", "text_model", "vision_model",
                 "percent_trainable", "n")
    value_cols = [c for c in frame.columns if c not in described]
    lead = [c for c in described if c in frame.columns]
    return frame[lead + value_cols]


def render_csv(report: Report) -> str:
    """The numeric frame as CSV, provenance as leading '#' lines (read with ``pd.read_csv(path, comment='#')``)."""
    head = "".join(f"# {line}\n" for line in _summary_lines(report))
    head += "".join(f"# file: {' | '.join(row)}\n" for row in _sources(report))
    return head + report_frame(report).to_csv(index=False)


def render_paired_markdown(frame: pd.DataFrame, baseline: str, what: str, decimals: int = 1) -> list[str]:
    """A Markdown table of :func:`paired_differences`."""
    header = ["run", "strategy", "seeds × languages", f"Δ {what} − {baseline}", "95 % CI"]
    body = [[label, row["strategy"], f"{row['seeds']} × {row['languages']} = {row['n']}",
             _fmt(row["delta"], decimals, sign=True),
             f"[{_fmt(row['ci_low'], decimals, sign=True)}, {_fmt(row['ci_high'], decimals, sign=True)}]"]
            for label, row in frame.iterrows()]
    return _md_table(header, body, 2)
