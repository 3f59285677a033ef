"""Time and memory of one training step per strategy, side by side (what LilT saves over CLIP). Not a test.

    python benchmarks/train_step.py --text recipes/configs/architectures/bert-base-multilingual-cased.json \\
        --vision deit_base_patch16_224 --no-pretrained --batch 8 --precision bf16 --strategies clip,lilt_lwa
    python benchmarks/train_step.py ... --json           # a list of objects instead of the table

Each strategy runs in a fresh child process, one after the other, so that no strategy inherits
another's allocations. The child builds the model on the CPU (``--no-pretrained``: random weights,
timing does not depend on them), then runs the library's own training step
(``mlilt.train.loop.training_step``: autocast towers, fp32 global InfoNCE, backward, AdamW with the
paper's settings) on one fixed random batch: ``--warmup`` steps first (the first step allocates the
optimizer state), then ``--steps`` timed steps; ``step_s`` is the fastest of them (timeit's rule:
on a shared machine the fastest run is the least disturbed one; ``step_s_median`` and every step's
time are in the JSON too).

Memory (``peak_mem_mb``, MB = 2**20 bytes) is the process's peak footprint *while training*:
on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the peak resident set size (``VmHWM``),
whose high-water mark is reset (``/proc/self/clear_refs``) once the model is built, so model
construction's transient copies are not counted but the model's weights are -- training a model
needs them. ``mem_over_model_mb`` is the part training adds on top of the built model (gradients,
optimizer state, activations). Where the mark cannot be reset, the lifetime peak
(``getrusage().ru_maxrss``) is reported and the JSON says so (``peak_kind``).

Columns: step time (wall clock; ``step_cpu_s``: CPU time of the process over all its threads, the
steadier figure on a shared machine), peak memory, trainable parameters and optimizer-state bytes,
each with its ratio to ``clip`` (when ``clip`` is among the strategies).
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--steps", type=int, default=2, help="Timed steps per strategy (median reported).")
    p.add_argument("--warmup", type=int, default=1, help="Untimed steps first (optimizer state, allocator).")
    p.add_argument("--gradient-checkpointing", action="store_true", help="Recompute tower activations.")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if available.")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the child (default: torch's).")
    p.add_argument("--timeout", type=float, default=7200, help="Seconds allowed per strategy.")
    p.add_argument("--json", action="store_true", help="Print a JSON list instead of the table.")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one strategy
    return p


# ---- the child: one strategy -------------------------------------------------------------------

def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_mb(reset_ok: bool) -> tuple[float, str]:
    import resource

    if reset_ok and (hwm := _status_kb("VmHWM")) is not None:
        return hwm / 1024, "rss_since_model_built"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_lifetime"


def run_child(args) -> dict:
    import gc

    import torch
    from accelerate import Accelerator

    import mlilt
    from mlilt.train.checkpoint import trained_state_nbytes
    from mlilt.train.config import TrainConfig
    from mlilt.train.loop import prepare_training, training_step

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    torch.manual_seed(0)
    pretrained = not args.no_pretrained
    model_config = mlilt.ModelConfig(
        text=mlilt.TextTowerConfig(args.text, pretrained=pretrained, max_length=args.text_length),
        vision=mlilt.VisionTowerConfig(args.vision, pretrained=pretrained, img_size=args.img_size,
                                       model_kwargs=json.loads(args.vision_kwargs)),
        embed_dim=args.embed_dim, strategy=args.child)
    built = time.perf_counter()
    model = mlilt.build_model(model_config)
    build_s = time.perf_counter() - built
    counts = mlilt.count(model)
    steps = args.warmup + args.steps
    config = TrainConfig(model=model_config, batch_size=args.batch, warmup_steps=0,
                         mixed_precision={"fp32": "no"}.get(args.precision, args.precision),
                         gradient_checkpointing=args.gradient_checkpointing)
    accelerator = Accelerator(cpu=not cuda, mixed_precision=config.mixed_precision)
    t = prepare_training(accelerator, model, config, total_steps=steps)

    generator = torch.Generator().manual_seed(0)
    size = model.vision.data_config["input_size"][-1] if args.img_size is None else args.img_size
    vocab = model.text.model.config.vocab_size
    batch = {"pixels": torch.randn(args.batch, 3, size, size, generator=generator),
             "input_ids": torch.randint(min(1000, vocab - 1), vocab, (args.batch, args.text_length),
                                        generator=generator),
             "attention_mask": torch.ones(args.batch, args.text_length, dtype=torch.long)}

    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_mb = torch.cuda.memory_allocated() / MIB
        reset_ok = True
    else:
        reset_ok = _reset_peak_rss()
        base_mb = (_status_kb("VmRSS") or 0) / 1024
    times, cpu_times, losses = [], [], []
    for i in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = training_step(t, [batch])
        losses.append(float(out["loss"]))
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if i >= args.warmup:
            times.append(wall)
            cpu_times.append(cpu)
        print(f"[{args.child}] step {i + 1}/{steps}: {wall:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr, flush=True)
    if cuda:
        peak_mb, peak_kind = torch.cuda.max_memory_allocated() / MIB, "cuda_max_allocated"
    else:
        peak_mb, peak_kind = _peak_rss_mb(reset_ok)
    optimizer_bytes = sum(v.numel() * v.element_size() for state in t.optimizer.state.values()
                          for v in state.values() if torch.is_tensor(v))
    return {"strategy": args.child, "step_s": min(times, default=float("nan")),
            "step_s_median": statistics.median(times) if times else float("nan"), "step_s_all": times,
            "step_cpu_s": min(cpu_times, default=float("nan")), "step_cpu_s_all": cpu_times,
            "peak_mem_mb": peak_mb, "mem_over_model_mb": peak_mb - base_mb,
            "model_mem_mb": base_mb, "peak_kind": peak_kind, "trainable": counts["trainable"],
            "total": counts["total"], "percent_trainable": counts["percent_trainable"],
            "optimizer_state_bytes": optimizer_bytes, "trained_state_bytes": trained_state_nbytes(model),
            "build_s": build_s, "loss": losses, "device": "cuda" if cuda else "cpu",
            "threads": torch.get_num_threads(), "precision": args.precision, "batch": args.batch}


# ---- the parent: one child per strategy, then the table ----------------------------------------

def run_strategy(args, strategy: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", strategy]
    print(f"running {strategy} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=args.timeout, cwd=REPO,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        raise RuntimeError(f"strategy {strategy}: the child process failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def add_ratios(rows: list[dict]) -> list[dict]:
    clip = next((r for r in rows if r["strategy"] == "clip"), None)
    for r in rows:
        for key, base in (("time_vs_clip", "step_s"), ("cpu_vs_clip", "step_cpu_s"), ("mem_vs_clip", "peak_mem_mb"),
                          ("trainable_vs_clip", "trainable"), ("optimizer_vs_clip", "optimizer_state_bytes")):
            r[key] = r[base] / clip[base] if clip and clip[base] else None
    return rows


def print_table(args, rows: list[dict]) -> None:
    def ratio(x):
        return "" if x is None else f"({x:.2f}x)"

    first = rows[0]
    print(f"text: {args.text}   vision: {args.vision} @ {args.img_size or 'default'} px   batch {args.batch}   "
          f"{args.precision}   {first['device']}, {first['threads']} threads   "
          f"fastest of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'strategy':<14}{'step s':>10}{'':>9}{'CPU s':>10}{'':>9}{'peak MB':>10}{'':>9}{'over model MB':>15}"
          f"{'trainable':>14}{'':>9}{'optim. MB':>11}{'':>9}")
    for r in rows:
        # 4 significant digits: a GPU step takes tens of milliseconds, a CPU step minutes.
        print(f"{r['strategy']:<14}{r['step_s']:>10.4g}{ratio(r['time_vs_clip']):>9}"
              f"{r['step_cpu_s']:>10.4g}{ratio(r['cpu_vs_clip']):>9}{r['peak_mem_mb']:>10.0f}"
              f"{ratio(r['mem_vs_clip']):>9}{r['mem_over_model_mb']:>15.0f}{r['trainable']:>14,}"
              f"{ratio(r['trainable_vs_clip']):>9}{r['optimizer_state_bytes'] / MIB:>11.1f}"
              f"{ratio(r['optimizer_vs_clip']):>9}")
    print(f"peak MB: {first['peak_kind']}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_child(args)), flush=True)
        return 0
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    rows = add_ratios([run_strategy(args, s, argv) for s in strategies])
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
