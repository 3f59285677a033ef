"""Peak memory of a training step, and the largest batch under a memory budget, for ``train_step.py``. Not a test.

``train_step.py``'s children measure their peak with the helpers here (the resident set's high-water
mark, or the allocator's replayed events); ``train_step.py --memory-budget GB`` runs ``memory_budget``:
per strategy, with and without gradient checkpointing, one child per batch of ``--fit-batches`` and
``--check-batch``, a line fitted through the fit batches, checked at the check batch, and the largest
batch under GB.

``--memory-budget`` measures on the CPU what ``max_memory_allocated`` measures on CUDA: the peak of
live tensor bytes, replayed from the allocator's events (``torch.profiler``, ``profile_memory``) over
all of the child's steps, plus the bytes of the model and the batch (``peak_kind``
``cpu_max_allocated``). RSS also counts the allocator's slack, whose noise hides a slope of tens of
MB per pair (gradient checkpointing); the replayed peak is exact, so a few small batches fit the line.
The line is fitted per allocator event (``fit_moments``), not only through the peaks: the moment that
sets the peak moves with the batch (late in backward, gradients allocated, at small batches; early,
activations kept, at large ones), so a line through small batches' peaks can underestimate a large one.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from pathlib import Path


# ---- the peak of one child ----------------------------------------------------------------------

def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb(reset_ok: bool) -> tuple[float, str]:
    import resource

    if reset_ok and (hwm := status_kb("VmHWM")) is not None:
        return hwm / 1024, "rss_since_model_built"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_lifetime"


class AllocatorPeak:
    """Peak of live tensor bytes allocated inside the block: the CPU's ``torch.cuda.max_memory_allocated``."""

    def __enter__(self):
        from torch.profiler import ProfilerActivity, profile

        self._profile = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._profile.__exit__(*exc)
        # Each "[memory]" event is one allocation (+bytes) or free (-bytes); replayed in time order, their
        # running sum is the live bytes allocated since entry. (kineto_results: the raw events, in their order.)
        events = [e for e in self._profile.profiler.kineto_results.events() if e.name() == "[memory]"]
        self.live_bytes = list(itertools.accumulate(e.nbytes() for e in sorted(events, key=lambda e: e.start_ns())))
        self.peak_bytes = max(self.live_bytes, default=0)


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied weights counted once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


# ---- the fit: peak memory = fixed + per-sample x batch ------------------------------------------

def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = fixed + slope * x``; returns (fixed, slope)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def fit_moments(batches: list[int], timelines: list) -> tuple:
    """Per allocator event, least-squares ``MB = fixed + per_sample x batch`` over the runs' timelines.

    A training step allocates and frees the same tensors in the same order at every batch (only their
    sizes change), so event i of one run is event i of another; the peak of a batch never measured is
    then the largest of these lines there -- exact even where the peak moves to another moment (late in
    backward, with every gradient allocated, at small batches; early, with every activation, at large).
    Returns (fixed, per_sample) tensors, or None when the runs' event sequences differ.
    """
    import torch

    if len({len(t) for t in timelines}) != 1:
        return None
    x = torch.tensor(batches, dtype=torch.float64)
    y = torch.stack(timelines)  # (runs, events)
    dx = x - x.mean()
    per_sample = (dx[:, None] * (y - y.mean(0))).sum(0) / (dx ** 2).sum()
    return y.mean(0) - per_sample * x.mean(), per_sample


def peak_at(fixed, per_sample, batch: int) -> tuple[float, int]:
    """(peak MB, the event that sets it) at ``batch``."""
    at = fixed + per_sample * batch
    moment = int(at.argmax())
    return float(at[moment]), moment


def largest_batch(fixed, per_sample, budget_mb: float) -> tuple[int | None, int | None]:
    """(largest batch whose peak stays within the budget, the event that binds it); None: memory does not grow."""
    import torch

    growing = per_sample > 0
    if not bool(growing.any()):
        return None, None
    if bool((fixed[~growing] > budget_mb).any()):
        return 0, int(torch.nonzero((fixed > budget_mb) & ~growing)[0])
    room = torch.where(growing, (budget_mb - fixed) / per_sample.clamp_min(1e-12), torch.inf)
    moment = int(room.argmin())
    return max(int(room[moment].floor()), 0), moment


def memory_budget(args, strategies: list[str], argv: list[str], run_strategy) -> int:
    """Peak memory at a few batches per strategy, fitted per event, the largest batch under the budget.

    ``run_strategy(args, strategy, argv)``: ``train_step.run_strategy``, one child's result (its ``peak_mem_mb``).
    """
    import tempfile

    import torch
    from safetensors.torch import load_file

    fit_batches = [int(b) for b in args.fit_batches.split(",")]
    if len(set(fit_batches)) < 2:
        raise SystemExit(f"--fit-batches {args.fit_batches}: a line needs at least two different batches")
    budget_mb = args.memory_budget * 1024
    rows = []
    for strategy in strategies:
        for checkpointing in (False, True):
            measured, kinds, timelines = {}, set(), {}
            for batch in [*fit_batches, args.check_batch]:
                with tempfile.TemporaryDirectory() as tmp:
                    timeline = Path(tmp) / "timeline.safetensors"
                    # Two steps: AdamW's state is allocated at the end of the first, so only the second step's
                    # forward and backward carry it beside the activations, as every step of a real run does.
                    child_argv = [*argv, "--batch", str(batch), "--warmup", "1", "--no-flops",
                                  "--profile", "0", "--timeline", str(timeline),
                                  *(["--gradient-checkpointing"] if checkpointing else [])]
                    child = run_strategy(args, strategy, child_argv)
                    if timeline.exists():
                        timelines[batch] = load_file(timeline)["mb"]
                measured[batch] = child["peak_mem_mb"]
                kinds.add(child["peak_kind"])
            lines = fit_moments(fit_batches, [timelines[b] for b in fit_batches]) \
                if all(b in timelines for b in fit_batches) else None
            fit = "per_event" if lines else "peaks"
            if lines is None:  # CUDA, or event sequences that differ: a line through the peaks alone
                fixed, per_sample = fit_line(fit_batches, [measured[b] for b in fit_batches])
                lines = torch.tensor([fixed], dtype=torch.float64), torch.tensor([per_sample], dtype=torch.float64)
            predicted, check_moment = peak_at(*lines, args.check_batch)
            largest, moment = largest_batch(*lines, budget_mb)
            # The line of the event that binds at the budget (the peak's own at the check batch if none binds).
            moment = check_moment if moment is None else moment
            fixed, per_sample = float(lines[0][moment]), float(lines[1][moment])
            rows.append({"strategy": strategy, "gradient_checkpointing": checkpointing, "measured_mb": measured,
                         "fit": fit, "fixed_mb": fixed, "per_sample_mb": per_sample, "check_batch": args.check_batch,
                         "check_predicted_mb": predicted, "check_measured_mb": measured[args.check_batch],
                         "check_error": predicted / measured[args.check_batch] - 1, "budget_gb": args.memory_budget,
                         "largest_batch": largest, "peak_kind": "/".join(sorted(kinds))})
            print(f"{strategy} (gradient checkpointing {'on' if checkpointing else 'off'}): measured MB {measured}, "
                  f"fit ({fit}) {fixed:.0f} + {per_sample:.1f} x batch at the binding moment, largest batch under "
                  f"{args.memory_budget:g} GB: {largest}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"text: {args.text}   vision: {args.vision} @ {args.img_size or 'default'} px   {args.precision}   "
          f"budget {args.memory_budget:g} GB   fit on batches {args.fit_batches}, checked at {args.check_batch}   "
          f"peak: {'/'.join(sorted({r['peak_kind'] for r in rows}))}, "
          f"fitted {'/'.join(sorted({r['fit'] for r in rows}))}")
    print(f"{'strategy':<14}{'grad ckpt':>10}{'fixed MB':>10}{'MB/sample':>11}{'check pred/meas MB':>22}"
          f"{'error':>8}{'largest batch':>15}")
    for r in rows:
        print(f"{r['strategy']:<14}{'yes' if r['gradient_checkpointing'] else 'no':>10}{r['fixed_mb']:>10.0f}"
              f"{r['per_sample_mb']:>11.1f}{r['check_predicted_mb']:>11.0f} / {r['check_measured_mb']:<8.0f}"
              f"{100 * r['check_error']:>+7.1f}%{r['largest_batch'] if r['largest_batch'] is not None else '-':>15}")
    return 0
