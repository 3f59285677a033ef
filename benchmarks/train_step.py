"""Time and memory of one training step per strategy, side by side (what LilT saves over CLIP). Not a test.

    python benchmarks/train_step.py --text recipes/configs/architectures/bert-base-multilingual-cased.json \\
        --vision deit_base_patch16_224 --no-pretrained --batch 8 --precision bf16 --strategies clip,lilt_lwa
    python benchmarks/train_step.py ... --json           # a list of objects instead of the table
    python benchmarks/train_step.py ... --steps 10       # more rounds: a steadier median on a drifting machine

Memory, FLOPs and counts: each strategy runs in a fresh child process, one after the other, so that no
strategy inherits another's allocations. The child builds the model on the CPU (``--no-pretrained``:
random weights, timing does not depend on them), then runs the library's own training step
(``mlilt.train.loop.training_step``: autocast towers, fp32 global InfoNCE, backward, AdamW with the
paper's settings) on one fixed random batch, ``--warmup`` steps and one more (the first step allocates
the optimizer state).

Step time: one more child builds every strategy's model and, after ``--warmup`` steps each, runs
``--steps`` rounds of one step of each strategy in turn (A B C A B C ...). A shared VM's speed drifts
by 10-30 % within minutes; strategies timed in separate processes each see a different minute, and a
ratio of their fastest steps measures that drift as much as the strategies (1.12x, 1.15x and 1.27x for
the same ``lilt_lwa`` / ``ln_only`` code). Steps taken in the same round see the same machine, so a
ratio is the median over rounds of the ratio within each round; ``step_s`` is each strategy's median
step; every step is in the JSON (``step_s_all``).

Memory (``peak_mem_mb``, MB = 2**20 bytes) is the process's peak footprint *while training*:
on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the peak resident set size (``VmHWM``),
whose high-water mark is reset (``/proc/self/clear_refs``) once the model is built, so model
construction's transient copies are not counted but the model's weights are -- training a model
needs them. ``mem_over_model_mb`` is the part training adds on top of the built model (gradients,
optimizer state, activations). Where the mark cannot be reset, the lifetime peak
(``getrusage().ru_maxrss``) is reported and the JSON says so (``peak_kind``).

``--memory-budget``: see ``train_step_memory.py`` (the peak replayed from the allocator's events on the
CPU, the line fitted per event, the largest batch under the budget).

Columns: step time (wall clock; ``step_cpu_s``: CPU time of the process over all its threads), peak memory, trainable parameters and optimizer-state bytes,
each with its ratio to ``clip`` (when ``clip`` is among the strategies). Then the copies of one step
(``count_copies`` in ``train_step_ops.py``, from torch.profiler with ``record_shapes``: ``aten::copy_``
calls, the dtype casts among them, the bytes they read and write, and 0-d scalar conversions apart),
with their ratio to ``ln_only``; they do not depend on the machine's speed or load, only on the code and
library versions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "RESULT "
MIB = 2 ** 20

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when a test loads this file
from train_step_memory import (  # noqa: E402
    AllocatorPeak, memory_budget, peak_rss_mb, reset_peak_rss, status_kb, storage_bytes)
from train_step_ops import count_copies, count_flops, profile_step  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", required=True, help="Text tower: config.json (architecture), model directory or hub id.")
    p.add_argument("--vision", required=True, help="Vision tower: timm model name.")
    p.add_argument("--img-size", type=int, default=None, help="Vision input size (default: the model's).")
    p.add_argument("--vision-kwargs", default="{}", help="JSON keyword arguments for timm.create_model.")
    p.add_argument("--no-pretrained", action="store_true", help="Random weights (architecture only).")
    p.add_argument("--embed-dim", type=int, default=256, help="Shared embedding width.")
    p.add_argument("--text-length", type=int, default=30, help="Tokens per caption (the paper: 30).")
    p.add_argument("--batch", type=int, default=8, help="Pairs per step.")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32, or autocast of the towers to bf16/fp16 (loss and weights stay fp32).")
    p.add_argument("--strategies", default="clip,lilt_lwa", help="Comma-separated strategy presets.")
    p.add_argument("--steps", type=int, default=3,
                   help="Timed rounds: one step of each strategy in turn, in one process (median reported).")
    p.add_argument("--warmup", type=int, default=1, help="Untimed steps first (optimizer state, allocator).")
    p.add_argument("--gradient-checkpointing", action="store_true", help="Recompute tower activations.")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if available.")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the child (default: torch's).")
    p.add_argument("--timeout", type=float, default=7200, help="Seconds allowed per strategy.")
    p.add_argument("--compile", action="store_true",
                   help="Also run each strategy compiled (Accelerate's dynamo_backend inductor), beside eager.")
    p.add_argument("--no-flops", action="store_true", help="Skip the FLOP count (one extra eager step per strategy).")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS",
                   help="torch.profiler over one more step; print its top ROWS ops by self time.")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GB",
                   help="Fit peak memory = fixed + per-sample x batch per strategy (with and without gradient "
                        "checkpointing) and print the largest batch under GB (GB = 2**30 bytes).")
    p.add_argument("--fit-batches", default="1,2,4", help="Batches the memory fit is measured at.")
    p.add_argument("--check-batch", type=int, default=8, help="Batch measured to check the fit (not fitted on).")
    p.add_argument("--json", action="store_true", help="Print a JSON list instead of the table.")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one strategy
    p.add_argument("--child-time", default=None, help=argparse.SUPPRESS)  # internal: time these strategies in turn
    p.add_argument("--child-mode", default="eager", help=argparse.SUPPRESS)  # internal: eager | compiled
    p.add_argument("--timeline", default=None, help=argparse.SUPPRESS)  # internal: the child's memory per event
    return p


# ---- the child: one strategy -------------------------------------------------------------------

def _accelerator(args):
    import torch
    from accelerate import Accelerator

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    return Accelerator(cpu=not cuda, mixed_precision={"fp32": "no"}.get(args.precision, args.precision),
                       dynamo_backend="inductor" if args.child_mode == "compiled" else "no")


def build_training(args, accelerator, strategy: str, steps: int):
    """The model of ``strategy``, its ``Training`` through the library's own ``prepare_training``, a fixed batch."""
    import torch

    import mlilt
    from mlilt.train.config import TrainConfig
    from mlilt.train.loop import prepare_training

    torch.manual_seed(0)
    pretrained = not args.no_pretrained
    model_config = mlilt.ModelConfig(
        text=mlilt.TextTowerConfig(args.text, pretrained=pretrained, max_length=args.text_length),
        vision=mlilt.VisionTowerConfig(args.vision, pretrained=pretrained, img_size=args.img_size,
                                       model_kwargs=json.loads(args.vision_kwargs)),
        embed_dim=args.embed_dim, strategy=strategy)
    built = time.perf_counter()
    model = mlilt.build_model(model_config)
    build_s = time.perf_counter() - built
    config = TrainConfig(model=model_config, batch_size=args.batch, warmup_steps=0,
                         mixed_precision=accelerator.mixed_precision,
                         gradient_checkpointing=args.gradient_checkpointing)
    t = prepare_training(accelerator, model, config, total_steps=steps)

    generator = torch.Generator().manual_seed(0)
    size = model.vision.data_config["input_size"][-1] if args.img_size is None else args.img_size
    vocab = model.text.model.config.vocab_size
    batch = {"pixels": torch.randn(args.batch, 3, size, size, generator=generator),
             "input_ids": torch.randint(min(1000, vocab - 1), vocab, (args.batch, args.text_length),
                                        generator=generator),
             "attention_mask": torch.ones(args.batch, args.text_length, dtype=torch.long)}
    return model, t, batch, build_s


def timed_step(t, batch: dict, label: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (all threads) and loss of one ``training_step``."""
    import torch

    from mlilt.train.loop import training_step

    start, cpu_start = time.perf_counter(), time.process_time()
    loss = float(training_step(t, [batch])["loss"])
    if t.accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"[{label}] step: {wall:.3g} s wall, {cpu:.3g} s CPU", file=sys.stderr, flush=True)
    return wall, cpu, loss


def run_child(args) -> dict:
    """Everything but the step time of one strategy, alone in its process: memory, counts, FLOPs, profile.

    Runs ``--warmup`` steps, then one more: AdamW allocates its state at the end of the first step, so the
    peak of the next one is what every step of a real run holds.
    """
    import gc

    import torch

    import mlilt
    from mlilt.train.checkpoint import trained_state_nbytes

    accelerator = _accelerator(args)
    cuda = accelerator.device.type == "cuda"
    steps = args.warmup + 1
    model, t, batch, build_s = build_training(args, accelerator, args.child, steps)
    counts = mlilt.count(model)

    gc.collect()
    replay = args.memory_budget is not None and not cuda  # see train_step_memory: RSS is too coarse for a fit
    allocated = AllocatorPeak() if replay else contextlib.nullcontext()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_mb = torch.cuda.memory_allocated() / MIB
        reset_ok = True
    elif replay:
        base_mb = storage_bytes([*model.parameters(), *model.buffers(), *batch.values()]) / MIB
    else:
        reset_ok = reset_peak_rss()
        base_mb = (status_kb("VmRSS") or 0) / 1024
    with allocated:
        losses = [timed_step(t, batch, f"{args.child} {args.child_mode}, memory")[2] for _ in range(steps)]
    if cuda:
        peak_mb, peak_kind = torch.cuda.max_memory_allocated() / MIB, "cuda_max_allocated"
    elif replay:
        peak_mb, peak_kind = base_mb + allocated.peak_bytes / MIB, "cpu_max_allocated"
        if args.timeline:
            from safetensors.torch import save_file

            save_file({"mb": base_mb + torch.tensor(allocated.live_bytes, dtype=torch.float64) / MIB}, args.timeline)
    else:
        peak_mb, peak_kind = peak_rss_mb(reset_ok)
    extra = {}
    if not args.no_flops:
        extra.update(count_flops(t.dual, {k: v.to(accelerator.device) for k, v in batch.items()},
                                 accelerator.autocast))
    if args.memory_budget is None:
        extra.update(count_copies(t, {k: v.to(accelerator.device) for k, v in batch.items()}))
    if args.profile:
        table = profile_step(t, {k: v.to(accelerator.device) for k, v in batch.items()}, args.profile)
        print(f"[{args.child} {args.child_mode}] profile of one step:\n{table}", file=sys.stderr, flush=True)
        extra["profile"] = table
    optimizer_bytes = sum(v.numel() * v.element_size() for state in t.optimizer.state.values()
                          for v in state.values() if torch.is_tensor(v))
    return {"strategy": args.child, "mode": args.child_mode,
            "peak_mem_mb": peak_mb, "mem_over_model_mb": peak_mb - base_mb,
            "model_mem_mb": base_mb, "peak_kind": peak_kind, "trainable": counts["trainable"],
            "total": counts["total"], "percent_trainable": counts["percent_trainable"],
            "optimizer_state_bytes": optimizer_bytes, "trained_state_bytes": trained_state_nbytes(model),
            "build_s": build_s, "loss": losses, "device": accelerator.device.type,
            "threads": torch.get_num_threads(), "precision": args.precision, "batch": args.batch,
            "gradient_checkpointing": args.gradient_checkpointing, **extra}


def run_timing_child(args) -> dict:
    """Step times of every strategy in one process, one step of each in turn (A B C A B C ...).

    This machine's speed drifts by 10-30 % within minutes; strategies timed one after the other each see
    a different minute, strategies timed in turn see the same one, step by step.
    """
    strategies = args.child_time.split(",")
    accelerator = _accelerator(args)
    runs = [build_training(args, accelerator, s, args.warmup + args.steps)[1:3] for s in strategies]
    for (t, batch), s in zip(runs, strategies):
        for _ in range(args.warmup):
            timed_step(t, batch, f"{s} {args.child_mode}, warm-up")
    times = {s: {"step_s_all": [], "step_cpu_s_all": []} for s in strategies}
    for i in range(args.steps):
        for (t, batch), s in zip(runs, strategies):
            wall, cpu, _ = timed_step(t, batch, f"{s} {args.child_mode}, round {i + 1}/{args.steps}")
            times[s]["step_s_all"].append(wall)
            times[s]["step_cpu_s_all"].append(cpu)
    return times


# ---- the parent: one child per strategy, then the table ----------------------------------------

def _run(args, argv: list[str], what: str, child_flags: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, *child_flags]
    print(f"running {what} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=args.timeout, cwd=REPO,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        raise RuntimeError(f"{what}: the child process failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def run_strategy(args, strategy: str, argv: list[str], mode: str = "eager") -> dict:
    """Memory, counts, FLOPs (and profile) of one strategy, in a fresh process."""
    return _run(args, argv, f"{strategy} ({mode})", ["--child", strategy, "--child-mode", mode])


def run_timing(args, strategies: list[str], argv: list[str], mode: str = "eager") -> dict:
    """Step times of all strategies, taken in turn in one fresh process."""
    return _run(args, argv, f"{', '.join(strategies)} in turn ({mode}), {args.steps} rounds",
                ["--child-time", ",".join(strategies), "--child-mode", mode])


def round_ratios(times: list[float], base: list[float]) -> list[float]:
    """One strategy's step over another's taken in the same round, round by round."""
    return [t / b for t, b in zip(times, base)]


def paired_ratio(times: list[float], base: list[float]) -> float:
    """The median of the within-round ratios: the VM's speed drifts between rounds, not within one."""
    return statistics.median(round_ratios(times, base))


def add_timings(rows: list[dict], timings: dict[str, dict]) -> list[dict]:
    """Each row's step time (median of its rounds) and its paired ratios to ``clip`` in the same mode."""
    for r in rows:
        own = timings[r["mode"]][r["strategy"]]
        r.update(own, step_s=statistics.median(own["step_s_all"]), step_cpu_s=statistics.median(own["step_cpu_s_all"]))
        if "flops" in r:
            r["flop_per_s"] = r["flops"] / r["step_s"]
    for i, r in enumerate(rows):
        clip = timings[r["mode"]].get("clip")
        r["time_vs_clip"] = paired_ratio(r["step_s_all"], clip["step_s_all"]) if clip else None
        r["cpu_vs_clip"] = paired_ratio(r["step_cpu_s_all"], clip["step_cpu_s_all"]) if clip else None
        # Every earlier strategy as a baseline too (e.g. lilt_lwa against ln_only, the floor it adds adapters to).
        r["time_vs_rounds"] = {o["strategy"]: round_ratios(r["step_s_all"], o["step_s_all"])
                               for o in rows[:i] if o["mode"] == r["mode"]}
        r["time_vs"] = {base: statistics.median(rounds) for base, rounds in r["time_vs_rounds"].items()}
    return rows


def add_ratios(rows: list[dict]) -> list[dict]:
    """Memory, parameters, optimizer state and FLOPs of each row against ``clip`` run the same way."""
    for r in rows:
        clip = next((c for c in rows if c["strategy"] == "clip" and c["mode"] == r["mode"]), None)
        for key, base in (("mem_vs_clip", "peak_mem_mb"), ("trainable_vs_clip", "trainable"),
                          ("optimizer_vs_clip", "optimizer_state_bytes"), ("flops_vs_clip", "flops")):
            r[key] = r[base] / clip[base] if clip and clip.get(base) and base in r else None
    return rows


def print_table(args, rows: list[dict]) -> None:
    def ratio(x):
        return "" if x is None else f"({x:.2f}x)"

    first = rows[0]
    print(f"text: {args.text}   vision: {args.vision} @ {args.img_size or 'default'} px   batch {args.batch}   "
          f"{args.precision}   {first['device']}, {first['threads']} threads   "
          f"median of {args.steps} rounds (one step of each strategy in turn) after {args.warmup} warm-up")
    print(f"{'strategy':<14}{'mode':<9}{'step s':>10}{'':>9}{'CPU s':>10}{'':>9}{'peak MB':>10}{'':>9}{'over model MB':>15}"
          f"{'trainable':>14}{'':>9}{'optim. MB':>11}{'':>9}")
    for r in rows:
        # 4 significant digits: a GPU step takes tens of milliseconds, a CPU step minutes.
        print(f"{r['strategy']:<14}{r['mode']:<9}{r['step_s']:>10.4g}{ratio(r['time_vs_clip']):>9}"
              f"{r['step_cpu_s']:>10.4g}{ratio(r['cpu_vs_clip']):>9}{r['peak_mem_mb']:>10.0f}"
              f"{ratio(r['mem_vs_clip']):>9}{r['mem_over_model_mb']:>15.0f}{r['trainable']:>14,}"
              f"{ratio(r['trainable_vs_clip']):>9}{r['optimizer_state_bytes'] / MIB:>11.1f}"
              f"{ratio(r['optimizer_vs_clip']):>9}")
    print(f"peak MB: {first['peak_kind']}; x: ratio to clip (step and CPU s: median over rounds of the ratio "
          f"of steps taken in the same round)")
    for r in rows:
        for base, rounds in r["time_vs_rounds"].items():
            print(f"step {r['strategy']} / {base} ({r['mode']}): {r['time_vs'][base]:.3f}x  (per round: "
                  f"{', '.join(f'{x:.3f}' for x in rounds)})")
    if "copies" in first:
        print_copies(rows)
    if "flops" not in first:
        return
    # How far each strategy is from its own ideal: FLOPs against clip's, beside the time against clip's.
    print(f"\n{'strategy':<14}{'mode':<9}{'GFLOP fwd':>11}{'GFLOP bwd':>11}{'adapters':>10}{'FLOPs/clip':>12}"
          f"{'time/clip':>11}{'GFLOP/s':>10}")
    for r in rows:
        def fmt(x):
            return "" if x is None else f"{x:.2f}x"
        print(f"{r['strategy']:<14}{r['mode']:<9}{r['forward_flops'] / 1e9:>11.1f}{r['backward_flops'] / 1e9:>11.1f}"
              f"{100 * r['adapter_flops'] / r['flops']:>9.1f}%{fmt(r['flops_vs_clip']):>12}"
              f"{fmt(r['time_vs_clip']):>11}{r['flop_per_s'] / 1e9:>10.1f}")
    print("GFLOP: one step's forward / backward (FlopCounterMode; a multiply-add is 2 FLOPs); adapters: their share "
          "of the step's FLOPs; GFLOP/s: the step's FLOPs over its median time")


def print_copies(rows: list[dict]) -> None:
    """Copies and casts of one step per row, with their ratio to ``ln_only`` (the floor adapters add to) run the same way."""
    print(f"\n{'strategy':<14}{'mode':<9}{'copies':>8}{'':>9}{'casts':>8}{'copy MB':>10}{'scalar':>8}")
    for r in rows:
        floor = next((f for f in rows if f["strategy"] == "ln_only" and f["mode"] == r["mode"]), None)
        ratio = f"({r['copies'] / floor['copies']:.2f}x)" if floor and floor["copies"] else ""
        print(f"{r['strategy']:<14}{r['mode']:<9}{r['copies']:>8}{ratio:>9}{r['casts']:>8}{r['copy_bytes'] / MIB:>10.1f}"
              f"{r['scalar_copies']:>8}")
    print("copies: aten::copy_ calls of one step on tensors (x: ratio to ln_only); casts: those that change the "
          "dtype; copy MB: bytes they read and write; scalar: conversions of 0-d tensors (AdamW's step counters)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_child(args)), flush=True)
        return 0
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.memory_budget is not None:
        return memory_budget(args, strategies, argv, run_strategy)
    if args.child_time:
        print(RESULT_PREFIX + json.dumps(run_timing_child(args)), flush=True)
        return 0
    modes = ("eager", "compiled") if args.compile else ("eager",)
    rows = [run_strategy(args, s, argv, mode) for mode in modes for s in strategies]
    timings = {mode: run_timing(args, strategies, argv, mode) for mode in modes}
    rows = add_ratios(add_timings(rows, timings))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
