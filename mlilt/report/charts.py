"""Report charts (PNG, matplotlib's Agg canvas, no pyplot) and the retrieval gallery."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .render import _summary_lines
from .tables import Report, Table, _group, _labels, _mlilt_version


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
