"""Report charts (PNG, matplotlib's Agg canvas, no pyplot) and the retrieval gallery."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .render import _summary_lines
from .languages import log_resource, resource_order, tier_groups
from .stats import (UNTRAINED_PROBE, compared_rows, fit_slope, resource_points, untrained_probe_points)
from .steps import last_steps
from .tables import MANY_LANGUAGES, Report, Table, _group, _labels, _mlilt_version


def _figure(**kwargs):
    """A matplotlib Figure on its own Agg canvas: no pyplot, no global backend switch, no GUI."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise RuntimeError("the PNG chart needs matplotlib: pip install matplotlib (or pass --no-plot)") from err
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _metadata(report: Report, title: str, *extra: str) -> dict:
    """PNG text chunks recording what produced the chart (and, in ``extra``, what it plots)."""
    return {"Software": f"mlilt report {report.mlilt_version}", "Title": title,
            "Description": "\n".join([*_summary_lines(report), *extra]),
            "Source": "; ".join(str(r.path) for r in report.files)}


def plot_table(report: Report, table: Table, path: Path, groups: list[str] | None = None) -> None:
    """A PNG with a bar-chart panel per language and mean column (or per ``groups``): bars = runs, error bars = std."""
    groups = groups or list(dict.fromkeys(g for g, _ in table.mean.columns))
    keys = list(dict.fromkeys(k for _, k in table.mean.columns))
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig = _figure(figsize=(3.3 * ncols, 2.7 * nrows + 1.0 + 0.22 * len(table.mean.index)))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    runs = list(table.mean.index)
    width = 0.8 / len(runs)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    # One y-range for every panel, fitted to the data, so that languages compare by eye.
    shown = [c for c in table.mean.columns if c[0] in groups]
    highest = np.nanmax((table.mean[shown] + table.std[shown].fillna(0)).to_numpy(dtype=float), initial=0.0)
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
    fig.savefig(path, dpi=110, metadata=_metadata(report, table.title))


def gallery_languages(languages: list[str], report: Report) -> list[str]:
    """The gallery's rows of one caption: every language, or for many (> MANY_LANGUAGES) the languages trained on and
    the best-resourced language of each tier (a row per language of 109 is a PNG of megabytes no one reads)."""
    if len(languages) <= MANY_LANGUAGES:
        return languages
    trained = [lang for lang in languages if lang in report.train_languages]
    others = [lang for lang in languages if lang not in trained]
    picks = {members[0] for members in tier_groups(resource_order(others, report.languages), report.languages).values()}
    return [lang for lang in languages if lang in trained or lang in picks] or languages[:MANY_LANGUAGES]


def write_gallery(report: Report, path: Path) -> Path | None:
    """The retrieval gallery PNG: rows = recorded caption x language, columns = runs (first seed of each
    configuration), each run's top-k images with the correct one framed; None when no file recorded one."""
    from mlilt.sheets import gallery_image

    groups = _group(last_steps(report.files), report.group_by)
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
        langs = gallery_languages(list(dict.fromkeys(lang for q in per_run
                                                     for lang in q.get(query["target"], {}).get("top", {}))), report)
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


def can_summarise_strategies(table: Table, english: str = "en") -> bool:
    """Whether ``table`` has what :func:`plot_strategy_summary` draws: English and a mean over the others."""
    return english in table.languages and any(g.startswith("mean (non-") for g in table.mean_languages)


def plot_strategy_summary(table: Table, path: Path, *, english: str = "en", title: str = "",
                          report: Report | None = None) -> None:
    """Two bars per row -- mean recall in English and in the other languages -- with seed std as error bars.

    ``table`` is a retrieval table built with ``metric="mean"`` (one 'mean' value per language); with ``report``
    the PNG records what produced it. Its text chunk 'Plotted' holds the bars' values.
    """
    other = next(g for g, _ in table.mean.columns if str(g).startswith("mean (non-"))
    runs = list(table.mean.index)
    fig = _figure(figsize=(7.5, 1.6 + 0.45 * len(runs)))
    ax = fig.subplots()
    y = np.arange(len(runs))
    plotted = []
    for offset, group, name, colour in ((-0.2, english, "English (trained)", "C0"),
                                        (0.2, other, f"other languages ({other[6:-1]})", "C1")):
        means = table.mean[(group, "mean")].to_numpy(dtype=float)
        stds = np.nan_to_num(table.std[(group, "mean")].to_numpy(dtype=float))
        ax.barh(y + offset, means, 0.38, xerr=stds, color=colour, label=name, capsize=2)
        for yi, m, s in zip(y + offset, means, stds):
            ax.text(m + s, yi, f"  {m:.1f}", va="center", fontsize="x-small")
        plotted += [f"{run} | {group} | {float(m)!r} | {float(s)!r}" for run, m, s in zip(runs, means, stds)]
    ax.set_yticks(y, [f"{r} ({table.rows.at[r, 'percent_trainable']:.2f}%)" for r in runs])
    ax.invert_yaxis()
    ax.set_xlabel("mean recall (TR/IR @1/5/10), % — bars: mean over seeds, whiskers: std")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)  # room for the value labels
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize="small")
    ax.set_title(title or table.title, fontsize="medium")
    metadata = (_metadata(report, title or table.title) if report is not None
                else {"Software": f"mlilt report {_mlilt_version()}", "Title": title})
    fig.savefig(path, dpi=110, metadata=metadata | {"Plotted": "\n".join(["run | column | mean | std", *plotted])})


def scatter_figure(report: Report, table: Table, points: dict, *, measure: str, per: str, left_out: list[str],
                   decade_ticks: bool = False):
    """Per-language Δ to the baseline (or value) of each row against a language measure: ``points`` maps a row to
    (tags, x, y); each row gets its least-squares line and the 95 % interval of its slope, the legend its slope
    ``per`` unit of x. Returns (Figure, {row: SlopeFit})."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    keys = " and ".join(dict.fromkeys(k for _, k in table.mean.columns))
    fig = _figure(figsize=(8.5, 6.0))
    ax = fig.subplots()
    fits = {}
    for i, (run, (tags, x, y)) in enumerate(points.items()):
        fit = fits[run] = fit_slope(x, y)
        colour = f"C{i % 10}"
        ax.scatter(x, y, s=16, alpha=0.7, color=colour,
                   label=f"{run}: slope {fit.slope:+.3f} {per} (95 % CI [{fit.low:+.3f}, {fit.high:+.3f}]), n = {fit.n}")
        if math.isnan(fit.slope):
            continue
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, fit.intercept + fit.slope * grid, color=colour, linewidth=1.8)
        # The slope's interval as the fan of lines through the centroid with the interval's end slopes.
        cx, cy = x.mean(), y.mean()
        ends = np.stack([cy + slope * (grid - cx) for slope in (fit.low, fit.high)])
        ax.fill_between(grid, ends.min(axis=0), ends.max(axis=0), color=colour, alpha=0.12, linewidth=0)
        for j in list(np.argsort(y)[:2]) + list(np.argsort(y)[-2:]):  # name the extremes
            ax.annotate(tags[j], (x[j], y[j]), fontsize="x-small", xytext=(3, 2), textcoords="offset points")
    if table.delta is not None:
        ax.axhline(0, color="grey", linewidth=0.8)
    if decade_ticks:  # x is log10(GiB): a tick per decade, 0.1 1 10 100
        ax.xaxis.set_major_locator(MultipleLocator(1))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{10 ** v:g}"))
    ax.set_xlabel(measure)
    what = f"Δ to {report.baseline}" if table.delta is not None else "value"
    ax.set_ylabel(f"{what}, mean of {keys} (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="x-small")
    left = [*left_out, f"{', '.join(report.train_languages)} (trained on)"]
    ax.set_title(f"{table.title}: {report.eval_set} ({report.protocol}),\nper-language {what} against "
                 f"{measure.split(':')[0]};\nline = least-squares fit, band = 95 % interval of its slope (t, n−2)\n"
                 f"not plotted: {'; '.join(left)}; mlilt {report.mlilt_version}, {report.created}", fontsize="small")
    return fig, fits


def resource_figure(report: Report, table: Table):
    """:func:`scatter_figure` against log CC-100 size (the untrained towers' row left out where there is a
    baseline); returns (Figure, {row: SlopeFit})."""
    points = {run: resource_points(report, table, run) for run in compared_rows(report, table)}
    unknown = [lang for lang in table.languages if log_resource(lang, report.languages) is None]
    return scatter_figure(report, table, points, per="per 10× CC-100", decade_ticks=True,
                          measure="text the encoders saw in the language: CC-100 size, GiB (log scale)",
                          left_out=[f"{len(unknown)} languages without a CC-100 size"] if unknown else [])


def untrained_probe_figure(report: Report, table: Table):
    """:func:`scatter_figure` against the untrained text tower's probe in each language (what the encoder knew of
    it before any training); returns (Figure, {row: SlopeFit})."""
    points = {run: untrained_probe_points(report, table, run) for run in compared_rows(report, table)}
    shown = {tag for tags, _, _ in points.values() for tag in tags}
    unknown = [lang for lang in table.languages if lang not in shown and lang not in report.train_languages]
    return scatter_figure(report, table, points, per="per probe point",
                          measure=f"the untrained text tower's probe {UNTRAINED_PROBE}: English captions finding "
                                  "the language's own (%)",
                          left_out=[f"{len(unknown)} languages without a probe"] if unknown else [])


def plot_resource_scatter(report: Report, table: Table, path: Path, figure=resource_figure) -> dict:
    """Write ``figure`` (:func:`resource_figure` or :func:`untrained_probe_figure`) as a PNG; return its fits."""
    fig, fits = figure(report, table)
    lines = [f"{run}: slope {f.slope!r}, 95 % CI [{f.low!r}, {f.high!r}], intercept {f.intercept!r}, n {f.n}"
             for run, f in fits.items()]
    fig.savefig(path, dpi=110, metadata=_metadata(report, table.title, *lines))
    return fits


def plot_steps(report: Report, table: Table, path: Path) -> None:
    """One panel per column of the steps table: a line per configuration against the epoch (the step where the
    report does not know the epoch's length), band = mean ± sample std over seeds."""
    from matplotlib.ticker import MaxNLocator

    per_epoch = report.steps_per_epoch
    x_label = f"epoch ({per_epoch} steps each)" if per_epoch else "training step"
    groups = list(dict.fromkeys(g for g, _ in table.mean.columns))
    fig = _figure(figsize=(4.2 * len(groups), 4.0))
    axes = fig.subplots(1, len(groups), squeeze=False).ravel()
    configs = list(dict.fromkeys(table.rows["config"]))
    for ax, (group, key) in zip(axes, table.mean.columns):
        for i, config in enumerate(configs):
            rows = table.rows.index[table.rows["config"] == config]
            x = table.rows.loc[rows, "step"].to_numpy(dtype=float) / (per_epoch or 1)
            mean = table.mean.loc[rows, (group, key)].to_numpy(dtype=float)
            std = table.std.loc[rows, (group, key)].to_numpy(dtype=float)
            ax.plot(x, mean, marker="o", markersize=3, color=f"C{i % 10}",
                    label=f"{config} (n = {'/'.join(map(str, sorted(set(table.rows.loc[rows, 'n']))))})")
            if not np.isnan(std).all():
                ax.fill_between(x, mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=f"C{i % 10}",
                                alpha=0.2, linewidth=0)
        members = table.mean_languages.get(group, [])
        ax.set_title(f"{group} {key}" + (f" ({len(members)} languages)" if len(members) > 1 else ""),
                     fontsize="medium")
        ax.set_xlabel(x_label)
        if per_epoch:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(3, len(configs)),
               fontsize="small")
    fig.suptitle(f"{table.title}: {report.eval_set} ({report.protocol})\nlines = mean over seeds, bands = mean ± "
                 f"sample std over seeds (none for one seed); mlilt {report.mlilt_version}, {report.created}",
                 fontsize="medium")
    fig.savefig(path, dpi=110, metadata=_metadata(report, table.title, f"x: {x_label}"))
