"""The paper's Tables 1 and 2 in miniature (LilT, Khan & Fu 2023): every strategy at its own learning rate.

On emoji-XTD v2 with the embedded default's towers (multilingual-e5-small + EfficientNet-Lite0):

1. **Learning rate.** For each trained strategy, train seed 0 at every rate of ``--lrs`` and score it
   on the English *validation* concepts (eval set ``emoji-xtd-val``: held-out training concepts, all
   three styles); the best English mean recall wins (a tie goes to the lower rate). A winner at
   the grid's edge says the best rate may lie beyond it, so the grid grows by one half-decade
   step that way (1e-3 -> 3e-3, 1e-4 -> 3e-5), at most ``EDGE_STEPS`` times. The test files are
   never read in this step.
2. **Seeds.** Train the other seeds at the chosen rate (seed 0 is the selection run itself), then
   evaluate every run on the test concepts: eight languages, each style and their mean, and the
   text probe. ``frozen`` is the untrained reference (its random projections seeded by the seed).
3. **Report.** ``reports/emoji-xtd-table.{md,csv,tex,png}``: mean ± std over seeds and trainable %
   per row, the chosen rates with their validation figures, per-style means, the paired difference
   of every row to ``clip`` with a 95 % t interval over seeds × languages, and a chart.

Finished runs are reused (a run directory with a final model and the same settings is not trained
again, and its evaluations written after that model are read back), so the table may span sessions::

    python recipes/emoji_xtd_table.py                   # the full table: hours on a 2-core CPU
    python recipes/emoji_xtd_table.py --strategies projection_only,lilt_ln --lrs 1e-4,1e-3 \\
        --seeds 0,1 --max-steps 3 --runs-dir runs/table-smoke --out reports/local/table-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("frozen", "projection_only", "lilt_ln", "lilt_bitfit", "lilt_da", "lilt_lwa", "lilt_lora", "lit",
              "clip")
UNTRAINED = "frozen"
BASELINE = "clip"
# Strategies whose vision adapter the config decides (EfficientNet's layerwise adapters); every other
# preset keeps its own plan (lilt_da: deep adapters in both towers).
CONFIG_VISION_ADAPTER = ("lilt_lwa",)
TEST_SET, VAL_SET, PROTOCOL = "emoji-xtd", "emoji-xtd-val", "all"
# How far the lr grid may grow past its edge when the best rate sits there (each step: one more run).
EDGE_STEPS = 2
# One line per invocation on a runs dir (start, minutes, finished?): a table that spans sessions says what it cost.
INVOCATIONS = "invocations.jsonl"
# Settings a reused run must share with the one asked for.
RUN_FIELDS = ("lr", "seed", "epochs", "max_steps", "batch_size", "train_data")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="Comma-separated rows (default: all).")
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="Learning-rate grid (default 1e-4,3e-4,1e-3).")
    p.add_argument("--seeds", default="0,1,2", help="Seeds; the first one chooses the learning rate.")
    p.add_argument("--config", default=str(REPO / "recipes" / "configs" / "emoji_xtd.yaml"),
                   help="Training config every row starts from (its strategy is replaced per row).")
    p.add_argument("--epochs", type=int, default=None, help="Override the config's epochs.")
    p.add_argument("--max-steps", type=int, default=None, help="Override: optimizer steps per run (smoke runs).")
    p.add_argument("--data-dir", default=None,
                   help="An emoji-XTD v2 build to use (default: $MLILT_HOME/data/emoji-xtd-v2, built if absent).")
    p.add_argument("--runs-dir", default="runs/emoji-xtd-table", help="Where the training runs go.")
    p.add_argument("--out", default="reports/emoji-xtd-table", help="Report path prefix (.md, .csv, .tex, .png).")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32",
                   help="Evaluation precision (default fp32: the same numbers on every CPU).")
    return p.parse_args(argv)


def stage(message: str) -> None:
    print(f"\n== {message}", file=sys.stderr, flush=True)


def run_dir_of(runs_dir: str | Path, strategy: str, lr: float | None, seed: int) -> Path:
    """``<runs_dir>/<strategy>-lr<lr>-s<seed>`` (``frozen-s<seed>`` for the untrained row)."""
    return Path(runs_dir) / (f"{strategy}-s{seed}" if lr is None else f"{strategy}-lr{lr:g}-s{seed}")


def train_overrides(args, strategy: str, lr: float, seed: int, positives: str = "none") -> list[str]:
    """Config flags of one run: the base config with this row's strategy, rate and seed."""
    flags = ["--config", args.config, "--model.strategy", strategy, "--lr", str(lr), "--seed", str(seed),
             "--run_dir", str(run_dir_of(args.runs_dir, strategy, lr, seed))]
    if strategy not in CONFIG_VISION_ADAPTER:
        flags += ["--model.vision_adapter", "none"]
    if args.epochs:
        flags += ["--epochs", str(args.epochs)]
    if args.max_steps:
        flags += ["--max_steps", str(args.max_steps)]
    # The committed table (reports/emoji-xtd-table.*) was trained before positives by id: keep it regenerable.
    flags += ["--positives", positives]
    # Always v2's English training split, whatever the config names (emoji_xtd.yaml trains the demo on v1).
    flags += ["--train_data", str(Path(args.data_dir) / "train.jsonl") if args.data_dir else "emoji-xtd"]
    return flags


def ensure_trained(flags: list[str], fields: tuple[str, ...] = RUN_FIELDS) -> Path:
    """Train the run ``flags`` describe unless a finished run with the same settings (``fields``) is there."""
    from mlilt.train.config import RUN_CONFIG_NAME, load_yaml
    from mlilt.train.config import parse_args as parse_train_args
    from mlilt.train.loop import train

    config = parse_train_args(flags + ["--resume", "true"])
    run_dir = Path(config.run_dir)
    if (run_dir / "model").is_dir():
        done = load_yaml(run_dir / RUN_CONFIG_NAME)
        differ = [f"{f}: {getattr(done, f)!r} there, {getattr(config, f)!r} asked"
                  for f in fields if getattr(done, f) != getattr(config, f)]
        if done.model.strategy != config.model.strategy:
            differ.append(f"strategy: {done.model.strategy} there")
        if differ:
            raise SystemExit(f"{run_dir} holds a finished run with other settings ({'; '.join(differ)}); "
                             "pass another --runs-dir")
        stage(f"{run_dir.name}: trained already")
        return run_dir
    stage(f"{run_dir.name}: training")
    train(config)
    return run_dir


def validation_score(run_dir: Path, val_set, opts) -> float:
    """English mean recall of a run on the validation concepts (all styles); written to its eval/ folder."""
    from mlilt.evaluation.harness import evaluate_retrieval, load_for_eval, write_result

    path = run_dir / "eval" / f"{VAL_SET}_{PROTOCOL}.json"
    if evaluated_already(path, run_dir):
        result = json.loads(path.read_text(encoding="utf-8"))
    else:
        result = evaluate_retrieval(load_for_eval(run_dir), val_set, PROTOCOL, ["en"], opts=opts, probe=False)
        write_result(result, path)
    return float(result["results"]["en"]["mean"])


def evaluated_already(path: Path, run_dir: Path) -> bool:
    """A result written after the run's final model is there (a rerun of the table reads it back)."""
    model = [f.stat().st_mtime for f in (run_dir / "model").glob("*")]
    if not path.is_file() or (model and path.stat().st_mtime < max(model)):
        return False
    stage(f"{run_dir.name}: {path.name} evaluated already")
    return True


def choose_learning_rates(args, strategies: list[str], lrs: list[float], seed: int, val_set, opts) -> dict:
    """Strategy -> {"lr": chosen, "validation": {lr: English val mean recall}} (seed ``seed`` only)."""
    chosen = {}
    for strategy in strategies:
        scores = {}

        def score(lr: float) -> None:
            run_dir = ensure_trained(train_overrides(args, strategy, lr, seed))
            scores[lr] = validation_score(run_dir, val_set, opts)
            print(f"{strategy} lr {lr:g}: English validation mean recall {scores[lr]:.2f}", file=sys.stderr)

        for lr in lrs:
            score(lr)
        best = max(sorted(scores), key=lambda lr: scores[lr])  # sorted + max: a tie keeps the lower rate
        for _ in range(EDGE_STEPS if len(scores) > 1 else 0):
            edge = +1 if best == max(scores) else -1 if best == min(scores) else 0
            if not edge:
                break
            score(half_decade_step(best, edge))
            best = max(sorted(scores), key=lambda lr: scores[lr])
        chosen[strategy] = {"lr": best, "validation": {f"{lr:g}": round(v, 3) for lr, v in sorted(scores.items())}}
    return chosen


def half_decade_step(lr: float, direction: int) -> float:
    """The next rate of the 1-3-10 sequence above (``direction`` +1) or below (-1) ``lr``."""
    step = round(2 * math.log10(lr)) + direction
    return float(f"{10 ** (step / 2):.0e}")


def evaluate_test(load, run_dir: Path, test_set, opts, langs: list[str] | None = None) -> Path:
    """The set's languages (default its eight; or ``langs``), each style and their mean, and the text probe, into
    ``run_dir/eval``."""
    from mlilt.evaluation.harness import evaluate_retrieval, format_table, write_result

    path = run_dir / "eval" / f"{TEST_SET}_{PROTOCOL}.json"
    if evaluated_already(path, run_dir):
        return path
    result = evaluate_retrieval(load(), test_set, PROTOCOL, langs, opts=opts)
    print(format_table(result))
    return write_result(result, path)


def untrained_reference(args, seed: int):
    """The ``frozen`` preset on the config's base models, projections drawn with ``seed``."""
    from mlilt.evaluation.harness import load_preset
    from mlilt.train.config import parse_args as parse_train_args

    m = parse_train_args(["--config", args.config]).model
    return load_preset(UNTRAINED, m.text.name_or_path, m.vision.name, vision_weights=m.vision.weights,
                       img_size=m.vision.img_size, max_length=m.text.max_length, embed_dim=m.embed_dim,
                       vision_kwargs=m.vision.model_kwargs, seed=seed)


def write_table_report(result_files: list[Path], selection: dict, out: str, wall_min: float, total_min: float,
                       invocations: int) -> list[Path]:
    """The report files: mlilt report's tables plus the rates, per-style means, paired Δ and the chart."""
    from mlilt.report import (build_report, load_results, paired_differences, plot_strategy_summary,
                              protocol_view, render_paired_markdown, write_report)

    files = load_results(result_files)
    strategies = {f.run["strategy"] for f in files}
    baseline = BASELINE if BASELINE in strategies else None
    report = build_report(files, baseline=baseline, metric="mean")
    written = write_report(report, out, plot=False)
    prefix = Path(out)
    chart = prefix.with_name(prefix.name + ".png")
    plot_strategy_summary(report.table("retrieval"), chart,
                          title="emoji-XTD v2 (test, 3 styles): mean recall per strategy, each at its chosen lr")
    lines = ["", "## Learning rates (chosen on seed 0, English validation concepts, mean recall %)", ""]
    grid = sorted({lr for s in selection.values() for lr in s["validation"]}, key=float)
    lines += ["| strategy | " + " | ".join(f"lr {lr}" for lr in grid) + " | chosen |",
              "|---|" + "---:|" * (len(grid) + 1)]
    lines += [f"| {name} | " + " | ".join(f"{s['validation'][lr]:.2f}" if lr in s["validation"] else "—"
                                          for lr in grid)
              + f" | {s['lr']:g} |" for name, s in selection.items()]
    lines += ["", "## Mean recall per style (all eight languages / the seven not trained on)", "",
              "| run | " + " | ".join(f"{style} all | {style} non-en" for style in _styles(files)) + " |",
              "|---|" + "---:|---:|" * len(_styles(files))]
    per_style = {style: build_report(protocol_view(files, style), metric="mean").table("retrieval")
                 for style in _styles(files)}
    for run in report.table("retrieval").mean.index:
        cells = []
        for style, table in per_style.items():
            groups = list(table.mean_languages)
            cells += [f"{table.mean.at[run, (g, 'mean')]:.1f}" for g in groups[:2]]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    if baseline:
        for what, langs in (("mean recall, all languages", None),
                            ("mean recall, non-English", [lang for lang in report.table("retrieval").languages
                                                         if lang != "en"])):
            frame = paired_differences(files, baseline, key="mean", languages=langs)
            lines += ["", f"## Paired difference to {baseline}: {what}", "",
                      "Each row minus clip at the same seed and language (the per-language mean of TR/IR@1/5/10, "
                      "averaged over the three styles); 95 % interval = mean ± t(0.975, n−1)·sd/√n over the "
                      "n = seeds × languages differences. Languages of one seed share a model, so they are not "
                      "independent: the interval says how consistent the gap is, not more.", ""]
            lines += render_paired_markdown(frame, baseline, "mean recall")
    lines += ["", f"Wall time: {wall_min:.1f} min in the invocation that wrote this report (reused runs count 0); "
              f"{total_min:.1f} min of wall clock over all {invocations} invocations on its runs dir "
              f"({INVOCATIONS} there; parallel ones counted once).",
              f"Chart: {chart.name}.", ""]
    md = prefix.with_name(prefix.name + ".md")
    md.write_text(md.read_text(encoding="utf-8") + "\n".join(lines), encoding="utf-8")
    return written + [chart]


@contextlib.contextmanager
def invocation_ledger(runs_dir: str | Path):
    """Yield the earlier invocations' records; on the way out (also on an error or SIGTERM) append this one's."""
    path = Path(runs_dir) / INVOCATIONS
    earlier = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []
    this = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:], "finished": False}
    start = time.perf_counter()
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` runs
    try:
        yield earlier, this
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        this["minutes"] = round((time.perf_counter() - start) / 60, 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(this) + "\n")


def wall_clock_minutes(records: list[dict]) -> float:
    """Minutes during which at least one invocation ran: invocations run in parallel count once, gaps not at all."""
    spans = sorted((start := datetime.strptime(r["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp(),
                    start + 60 * r["minutes"]) for r in records)
    total, covered_until = 0.0, -math.inf
    for start, end in spans:
        total += max(0.0, end - max(start, covered_until))
        covered_until = max(covered_until, end)
    return total / 60


def finish_invocation(earlier: list[dict], this: dict, started: float, out: str, what: str, write) -> None:
    """Write the report (``write(wall_min, total_min, invocations)`` returns its paths), print them, close the record."""
    wall = (time.perf_counter() - started) / 60
    total = wall_clock_minutes(earlier + [{**this, "minutes": wall}])
    stage(f"report -> {out}.{{md,csv,tex,png}}")
    for path in write(wall, total, len(earlier) + 1):
        print(path)
    print(f"{what} wall time: {wall:.1f} min; {total:.1f} min of wall clock over {len(earlier) + 1} invocations",
          file=sys.stderr)
    this["finished"] = True


def parse_strategies(text: str) -> list[str]:
    """``--strategies``: comma-separated presets, each checked."""
    from mlilt.strategies import PRESETS

    strategies = [s for s in text.split(",") if s]
    unknown = [s for s in strategies if s not in PRESETS]
    if unknown:
        raise SystemExit(f"--strategies: unknown {', '.join(unknown)}; presets: {', '.join(PRESETS)}")
    return strategies


def _styles(files) -> list[str]:
    return list(files[0].data.get("averaged_over") or [])


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    strategies = parse_strategies(args.strategies)
    lrs = sorted(float(x) for x in args.lrs.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]

    from mlilt.data.emoji_xtd import build_emoji_xtd
    from mlilt.evaluation.harness import EncodeOptions, load_for_eval
    from mlilt.evaluation.sets import load_eval_set

    with invocation_ledger(args.runs_dir) as (earlier, this):
        stage("emoji-XTD v2")
        data_dir = build_emoji_xtd(args.data_dir, version=2)
        opts = EncodeOptions(precision=args.precision)
        trained = [s for s in strategies if s != UNTRAINED]

        stage(f"learning rates {', '.join(f'{lr:g}' for lr in lrs)} on seed {seeds[0]}: English validation concepts")
        selection = choose_learning_rates(args, trained, lrs, seeds[0], load_eval_set(VAL_SET, data_dir=data_dir), opts)
        selection_path = Path(args.runs_dir) / "lr_selection.json"
        selection_path.write_text(json.dumps(selection, indent=1) + "\n", encoding="utf-8")

        test_set = load_eval_set(TEST_SET, data_dir=data_dir)
        results = []
        for strategy in strategies:
            for seed in seeds:
                if strategy == UNTRAINED:
                    run_dir = run_dir_of(args.runs_dir, strategy, None, seed)
                    stage(f"{run_dir.name}: untrained reference")
                    results.append(evaluate_test(lambda: untrained_reference(args, seed), run_dir, test_set, opts))
                    continue
                run_dir = ensure_trained(train_overrides(args, strategy, selection[strategy]["lr"], seed))
                results.append(evaluate_test(lambda: load_for_eval(run_dir), run_dir, test_set, opts))

        finish_invocation(earlier, this, started, args.out, "table",
                          lambda wall, total, n: write_table_report(results, selection, args.out, wall, total, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
