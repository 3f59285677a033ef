"""Issue 23's study: does locked-tower alignment carry further into low-resource languages, and grow with training?

On emoji-XTD v2 with the embedded default's towers, the way ``recipes/emoji_xtd_table.py`` trains them (its run
directories, reuse of finished runs and evaluations, and invocation log are this recipe's too):

1. **Train** ``lilt_lwa``, ``lilt_lora`` and ``clip`` on the English captions at the rates the table chose (its
   ``lr_selection.json``, or ``--lr``), every seed, for ``--epochs`` (4) with a checkpoint at the end of each
   epoch, on the default objective (``positives: group``: an emoji's three styles are positives of each other).
2. **Score** every checkpoint (``mlilt eval RUN --checkpoints``) on the test concepts in every CLDR language
   the set has (``--langs all``), with the text probe; ``frozen`` (the untrained towers) once per seed.
3. **Report** ``reports/emoji-xtd-languages.{md,csv,tex,png}`` with ``mlilt report`` (per tier, per language, Δ
   against CC-100 size, curves against the epoch), plus the slopes of Δ against CC-100 size and against the
   untrained tower's text probe, and the paired Δ to ``clip`` per tier and at every epoch.

Finished runs and scored checkpoints are reused, so the study may span sessions::

    python recipes/emoji_xtd_study.py                                # hours on a 2-core CPU, minutes on a GPU
    python recipes/emoji_xtd_study.py --lr lilt_lwa=1e-3,lilt_lora=1e-3,clip=3e-4 --seeds 0 --epochs 2 \\
        --langs en,de,sw --runs-dir runs/study-smoke --out reports/local/study-smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import emoji_xtd_table as table  # noqa: E402  (a sibling recipe: its training, evaluation and ledger)

STRATEGIES = ("frozen", "lilt_lwa", "lilt_lora", "clip")
POSITIVES = "group"  # TrainConfig's default since issue 20
# A reused run must also share these: another objective, or checkpoints not at the epochs' ends, is another study.
STUDY_FIELDS = (*table.RUN_FIELDS, "positives", "save_every")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="Comma-separated rows (default: all).")
    p.add_argument("--lr", default=None, metavar="STRATEGY=RATE,...",
                   help="Learning rates (default: the table's choices, TABLE_RUNS_DIR/lr_selection.json).")
    p.add_argument("--table-runs-dir", default="runs/emoji-xtd-table", help="The table's runs (its lr choices).")
    p.add_argument("--seeds", default="0,1,2", help="Seeds (default 0,1,2).")
    p.add_argument("--epochs", type=int, default=4, help="Epochs, a checkpoint at the end of each (default 4).")
    p.add_argument("--langs", default="all", help="Languages scored: 'all' (every CLDR language of the set; "
                                                  "default), tiers or codes, as mlilt eval --langs.")
    p.add_argument("--config", default=str(table.REPO / "recipes" / "configs" / "emoji_xtd.yaml"),
                   help="Training config every row starts from (its strategy is replaced per row).")
    p.add_argument("--data-dir", default=None,
                   help="An emoji-XTD v2 build to use (default: $MLILT_HOME/data/emoji-xtd-v2, built if absent).")
    p.add_argument("--runs-dir", default="runs/emoji-xtd-study", help="Where the training runs go.")
    p.add_argument("--out", default="reports/emoji-xtd-languages", help="Report path prefix (.md, .csv, .tex, .png).")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32",
                   help="Evaluation precision (default fp32: the same numbers on every CPU).")
    p.add_argument("--workers", type=int, default=None, help="Image-decoding processes of mlilt eval (default its).")
    args = p.parse_args(argv)
    args.max_steps = None  # the table's train_overrides reads it: a study trains whole epochs
    return args


def learning_rates(args, strategies: list[str]) -> dict[str, float]:
    """Strategy -> rate: the table's ``lr_selection.json``, overridden by ``--lr``."""
    path = Path(args.table_runs_dir) / "lr_selection.json"
    chosen = ({s: float(v["lr"]) for s, v in json.loads(path.read_text(encoding="utf-8")).items()}
              if path.is_file() else {})
    for item in filter(None, (x.strip() for x in (args.lr or "").split(","))):
        strategy, sep, value = item.partition("=")
        try:
            chosen[strategy.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise SystemExit(f"--lr: expected STRATEGY=RATE (e.g. clip=3e-4), got {item!r}")
    missing = [s for s in strategies if s not in chosen]
    if missing:
        raise SystemExit(f"no learning rate for {', '.join(missing)}: neither in {path} nor in --lr; the table's "
                         "committed choices (reports/README.md): --lr lilt_lwa=1e-3,lilt_lora=1e-3,clip=3e-4")
    return {s: chosen[s] for s in strategies}


def steps_per_epoch(flags: list[str]) -> int:
    """Optimizer steps in one pass over the training pairs of the run ``flags`` describe (as the trainer counts)."""
    from mlilt.data.pairs import load_pairs
    from mlilt.train.config import parse_args as parse_train_args

    config = parse_train_args(flags)
    pairs = load_pairs(config.train_data, format=config.train_format, image_root=config.image_root,
                       split=config.train_split, decode=False)
    return max(1, len(pairs) // config.batch_size)


def study_flags(args, strategy: str, lr: float, seed: int, per_epoch: int) -> list[str]:
    """The table's flags of a run on the default objective, a checkpoint at every epoch's end, all kept."""
    return (table.train_overrides(args, strategy, lr, seed, positives=POSITIVES)
            + ["--save_every", str(per_epoch), "--keep_checkpoints", "0"])


def score_checkpoints(args, run_dir: Path, data_dir: Path) -> list[Path]:
    """Every saved model of a run scored by ``mlilt eval --checkpoints`` (those scored already are read back)."""
    from mlilt.cli import main as mlilt
    from mlilt.evaluation.cli import saved_models

    paths, todo = [], []
    for step, _ in saved_models(run_dir, "all"):
        path = run_dir / "eval" / f"{table.TEST_SET}_{table.PROTOCOL}_step{step}.json"
        paths.append(path)
        if not table.evaluated_already(path, run_dir):
            todo.append(str(step))
    if todo:
        table.stage(f"{run_dir.name}: scoring the checkpoints of step {', '.join(todo)}")
        argv = ["eval", str(run_dir), "--checkpoints", ",".join(todo), "--eval-set", table.TEST_SET,
                "--protocol", table.PROTOCOL, "--data-dir", str(data_dir), "--langs", args.langs,
                "--precision", args.precision]
        if args.workers is not None:
            argv += ["--workers", str(args.workers)]
        if mlilt(argv):
            raise SystemExit(f"mlilt {' '.join(argv)} failed")
    return paths


def slope_lines(report) -> list[str]:
    """Markdown: the slope of each row's per-language Δ to the baseline against log10 CC-100 size and against the
    untrained tower's text probe, with 95 % intervals (least squares over the languages not trained on)."""
    from mlilt.report import fit_slope, resource_points
    from mlilt.report.stats import UNTRAINED_PROBE, compared_rows, untrained_probe_points

    retrieval = report.table("retrieval")
    lines = ["", f"## Slopes of Δ to {report.baseline} (mean recall, per language not trained on)", "",
             "Least-squares slope of the per-language Δ (the row's mean recall minus the baseline's, means over "
             "seeds) against log10 of the language's CC-100 size in GiB (per 10× more text), and against the "
             f"untrained towers' text probe {UNTRAINED_PROBE} (per probe point); 95 % interval = slope ± "
             "t(0.975, n−2)·SE. A negative slope: the row's edge grows where the encoder saw less text, or knew "
             "the language less well before training.", "",
             "| row | slope per 10× CC-100 | 95 % CI | n | slope per probe point (untrained) | 95 % CI | n |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for run in compared_rows(report, retrieval):
        cells = []
        for points, digits in ((resource_points, 3), (untrained_probe_points, 4)):
            fit = fit_slope(*points(report, retrieval, run)[1:])
            cells += [f"{fit.slope:+.{digits}f}", f"[{fit.low:+.{digits}f}, {fit.high:+.{digits}f}]", str(fit.n)]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines


def language_lines(report, files) -> list[str]:
    """Markdown: a row per language -- each row's mean recall, its Δ to the baseline with the 95 % interval over
    seeds (paired by seed), and each row's text probe, the untrained towers' among them."""
    from mlilt.report.languages import resource_order
    from mlilt.report.stats import UNTRAINED_PROBE, compared_rows, language_differences

    retrieval, probe = report.table("retrieval"), report.table("text_probe")
    rows, compared = list(retrieval.mean.index), compared_rows(report, retrieval)
    languages = resource_order(retrieval.languages, report.languages)
    deltas = language_differences(files, report.baseline, languages)
    probe_rows = [] if probe is None else list(probe.mean.index)
    seeds = sorted({int(n) for n in deltas["seeds"]}) if not deltas.empty else []
    lines = ["", f"## Per language after the last epoch: mean recall, Δ to {report.baseline}, text probe", "",
             f"Mean recall (TR/IR@1/5/10, %) of each row (means over seeds); Δ = the row minus {report.baseline}, "
             f"paired by seed, with its 95 % t interval over the {'/'.join(map(str, seeds))} seeds; text probe "
             f"{UNTRAINED_PROBE} (%) of each row. Languages by resource tier, then CC-100 size.", ""]
    header = (["language", "name", "CC-100 GiB", "tier", "images"] + [f"{r} recall" for r in rows]
              + [f"Δ {r} [95 % CI]" for r in compared] + [f"{r} probe" for r in probe_rows])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for lang in languages:
        info = report.languages.get(lang, {})
        cells = [lang, info.get("name") or "", fmt(info.get("cc100_gib"), ".2f"),
                 "" if info.get("tier") is None else str(info["tier"]), str(info.get("images", ""))]
        cells += [fmt(retrieval.mean.at[r, (lang, "mean")], ".1f") for r in rows]
        cells += [delta_cell(deltas, (r, lang)) for r in compared]
        cells += [fmt(probe.mean.at[r, (lang, UNTRAINED_PROBE)], ".1f")
                  if (lang, UNTRAINED_PROBE) in probe.mean.columns else "–" for r in probe_rows]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fmt(value, spec: str) -> str:
    """A number for a table cell; '–' for a missing one."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def delta_cell(frame, key) -> str:
    """A paired Δ and its interval, '+0.8 [+0.6, +1.0]', from a row of :func:`paired_differences`; '–' without one."""
    if key not in frame.index:
        return "–"
    d = frame.loc[key]
    return f"{d['delta']:+.1f} [{fmt(d['ci_low'], '+.1f')}, {fmt(d['ci_high'], '+.1f')}]"


def tier_delta_lines(report, files) -> list[str]:
    """Markdown: one table of the paired Δ to the baseline (each run at its last step) in all languages, those not
    trained on and each resource tier, with 95 % t intervals."""
    from mlilt.report import paired_differences
    from mlilt.report.languages import tier_groups
    from mlilt.report.stats import compared_rows

    retrieval = report.table("retrieval")
    unseen = [lang for lang in retrieval.languages if lang not in report.train_languages]
    groups = {"all": None, "non-" + "/".join(report.train_languages): unseen} | tier_groups(unseen, report.languages)
    frames = {name: paired_differences(files, report.baseline, key="mean", languages=langs)
              for name, langs in groups.items() if langs != []}
    rows = compared_rows(report, retrieval)
    lines = ["", f"## Paired Δ to {report.baseline} after the last epoch, per resource tier", "",
             f"Mean recall (TR/IR@1/5/10) of each row minus {report.baseline}'s at the same seed and language, "
             "averaged over the column's seeds × languages; 95 % interval = mean ± t(0.975, n−1)·sd/√n. Languages "
             "of one seed share a model, so the interval says how consistent the gap is, not more.", "",
             "| row | " + " | ".join(frames) + " |", "|---|" + "---:|" * len(frames)]
    for run in rows:
        lines.append(f"| {run} | " + " | ".join(delta_cell(frame, run) for frame in frames.values()) + " |")
    if rows:
        lines.append("| seeds × languages | " + " | ".join(
            f"{frame.at[rows[0], 'seeds']} × {frame.at[rows[0], 'languages']}" if rows[0] in frame.index else "–"
            for frame in frames.values()) + " |")
    return lines


def epoch_delta_lines(report, files) -> list[str]:
    """Markdown: the paired Δ to the baseline at every scored step (outside the trained languages, in the
    low-resource tiers, in the trained ones), 95 % t intervals: whether the edge grows with training."""
    from mlilt.report import paired_differences
    from mlilt.report.stats import compared_rows
    from mlilt.report.steps import low_resource

    retrieval = report.table("retrieval")
    unseen = [lang for lang in retrieval.languages if lang not in report.train_languages]
    columns = {"non-" + "/".join(report.train_languages): unseen, **low_resource(unseen, report.languages),
               **{lang: [lang] for lang in report.train_languages if lang in retrieval.languages}}
    columns = {name: langs for name, langs in columns.items() if langs}
    steps = sorted({f.step for f in files if f.step is not None})
    frames = {step: [paired_differences([f for f in files if f.step == step], report.baseline, key="mean",
                                        languages=langs) for langs in columns.values()]
              for step in steps}
    per_epoch = report.steps_per_epoch
    lines = ["", f"## Paired Δ to {report.baseline} at every epoch", "",
             f"As the table per tier, at each checkpoint: mean recall of each row minus {report.baseline}'s at the "
             "same seed, step and language, averaged over seeds × languages; 95 % t interval.", "",
             "| row | epoch (step) | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for run in compared_rows(report, retrieval):
        for step in steps:
            epoch = f"{step / per_epoch:g} ({step})" if per_epoch else str(step)
            lines.append(f"| {run} | {epoch} | " + " | ".join(delta_cell(f, run) for f in frames[step]) + " |")
    return lines


def write_study_report(result_files: list[Path], lrs: dict, out: str, wall_min: float, total_min: float,
                       invocations: int, per_epoch: int | None = None) -> list[Path]:
    """``mlilt report``'s files, the Markdown extended by the slopes, the Δ per tier, the rates and the wall time."""
    from mlilt.report import build_report, load_results, plot_resource_scatter, write_report
    from mlilt.report.charts import untrained_probe_figure

    files = load_results(result_files)
    strategies = {f.run["strategy"] for f in files}
    report = build_report(files, baseline=table.BASELINE if table.BASELINE in strategies else None, metric="mean")
    if report.steps_per_epoch is None and per_epoch:  # results scored before they recorded run.epoch
        report = dataclasses.replace(report, steps_per_epoch=per_epoch)
    written = write_report(report, out)
    md = next(p for p in written if p.suffix == ".md")
    lines = ["", "## How it was trained", "",
             f"Objective: positives {POSITIVES} (an emoji's three styles are positives of each other). Learning "
             "rates (the table's choices): " + ", ".join(f"{s} {lr:g}" for s, lr in lrs.items()) + "."]
    if report.baseline:
        lines += (slope_lines(report) + tier_delta_lines(report, files)
                  + epoch_delta_lines(report, files) + language_lines(report, files))
        if not any(p.name.endswith(".untrained_probe.png") for p in written):  # a report of few languages
            against_probe = md.with_name(md.name.removesuffix(".md") + ".untrained_probe.png")
            plot_resource_scatter(report, report.table("retrieval"), against_probe, figure=untrained_probe_figure)
            written.append(against_probe)
    lines += ["", f"Wall time: {wall_min:.1f} min in the invocation that wrote this report (reused runs and "
              f"evaluations count 0); {total_min:.1f} min of wall clock over all {invocations} invocations on its "
              f"runs dir ({table.INVOCATIONS} there; parallel ones counted once).", ""]
    text = md.read_text(encoding="utf-8")
    at = text.index("## Provenance")  # the study's sections before the provenance that closes the report
    md.write_text(text[:at] + "\n".join(lines).lstrip("\n") + "\n\n" + text[at:], encoding="utf-8")
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    strategies = table.parse_strategies(args.strategies)
    seeds = [int(s) for s in args.seeds.split(",")]
    trained = [s for s in strategies if s != table.UNTRAINED]
    lrs = learning_rates(args, trained)

    from mlilt.data.emoji_xtd import build_emoji_xtd
    from mlilt.evaluation.harness import EncodeOptions
    from mlilt.evaluation.sets import load_eval_set

    with table.invocation_ledger(args.runs_dir) as (earlier, this):
        table.stage("emoji-XTD v2")
        data_dir = build_emoji_xtd(args.data_dir, version=2)
        opts = EncodeOptions(precision=args.precision, **({} if args.workers is None else {"workers": args.workers}))
        per_epoch = steps_per_epoch(table.train_overrides(args, trained[0], 1e-3, seeds[0])) if trained else 0
        results = []
        for strategy in strategies:
            for seed in seeds:
                if strategy == table.UNTRAINED:
                    run_dir = table.run_dir_of(args.runs_dir, strategy, None, seed)
                    table.stage(f"{run_dir.name}: untrained reference")
                    results.append(table.evaluate_test(lambda: table.untrained_reference(args, seed), run_dir,
                                                       load_eval_set(table.TEST_SET, data_dir=data_dir), opts,
                                                       [x.strip() for x in args.langs.split(",") if x.strip()]))
                    continue
                flags = study_flags(args, strategy, lrs[strategy], seed, per_epoch)
                run_dir = table.ensure_trained(flags, STUDY_FIELDS)
                results += score_checkpoints(args, run_dir, data_dir)

        table.finish_invocation(
            earlier, this, started, args.out, "study",
            lambda wall, total, n: write_study_report(results, lrs, args.out, wall, total, n, per_epoch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
