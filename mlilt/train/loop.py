"""The training loop: contrastive alignment of the two towers with Accelerate (LilT §3, eq. 1).

Accelerate places the model, wraps it for DDP (FSDP and DeepSpeed are refused for now), autocasts
the towers (``mixed_precision``; frozen Linear/Conv weights are then stored in that dtype) and saves
the optimizer/scheduler/RNG state. The loss stays fp32 and is computed over the global batch of all
processes (``mlilt.train.loss``). Only trainable parameters reach the optimizer (AdamW); weight
decay applies to those with ``ndim >= 2`` (not biases, norms or the temperature). The learning rate
warms up linearly, then follows a cosine to ``min_lr``. Data order and augmentation are functions of
(seed, step) (``mlilt.train.batches``), so ``resume`` continues bit for bit on the same hardware and
number of processes; a streamed source (webdataset shards; needs ``max_steps``) is shuffled through
a buffer and resumes at the record it had reached, bit for bit too. Metrics go to
``RUN_DIR/metrics.jsonl`` (and TensorBoard when installed); unreadable images are skipped and
counted (``skipped_images``). Every ``eval_every`` steps the main process scores a validation set
(``mlilt.train.validation``; ``keep_best`` keeps the best model in ``RUN_DIR/best/``). A step whose
loss or gradient norm is not finite changes no weight (``nonfinite_steps``); ``max_nonfinite_steps``
of them in a row stop the run (``Diverged``), naming the last checkpoint to resume with a lower lr.
For tests, ``MLILT_TEST_NAN_AT_STEPS=3,4,5`` makes the loss non-finite at those steps.

    >>> from mlilt.train import TrainConfig, train
    >>> config = TrainConfig(train_data="pairs.jsonl", run_dir="runs/demo", batch_size=64, epochs=1)
    >>> run_dir = train(config)             # RUN_DIR/config.yaml, metrics.jsonl, checkpoints/, model/
    >>> model = mlilt.load(run_dir)

Launch on several processes with ``accelerate launch recipes/align_english.py --config ...``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mlilt.model import (CONFIG_NAME, FINAL_MODEL_DIR, WEIGHTS_NAME, DamagedFileError, DualEncoder, build_model,
                         check_trained_file)
from mlilt.train import checkpoint
from mlilt.train.batches import IndexedBatches, StreamedBatches, mixed_seed
from mlilt.train.config import RUN_CONFIG_NAME, TrainConfig, save_yaml
from mlilt.train.loss import contrastive_loss
from mlilt.train.tracking import JsonlTracker, truncate_metrics
from mlilt.train.validation import Validator

logger = logging.getLogger(__name__)


class ContrastiveModel(nn.Module):
    """The dual encoder behind one ``forward`` that DDP can wrap: embeddings of both sides and the scale."""

    def __init__(self, model: DualEncoder):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.model.encode_image(pixels), self.model.encode_text(input_ids, attention_mask),
                self.model.logit_scale())


# ---- optimisation -------------------------------------------------------------------------------

def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters only: matrices with weight decay; biases, norms, temperature (ndim < 2) without."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (strategy 'frozen'?); nothing to train")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW on the trainable parameters (LilT: lr 1e-4, weight decay 0.02).

    ``fused``: one kernel for all parameters. The default on the CPU is a Python loop over parameters
    with a few scalar-tensor conversions each, which for LilT's hundreds of small adapter tensors cost
    more than their arithmetic (benchmarks/README.md, issue 10's profile).
    """
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps, fused=True)


@dataclass
class WarmupCosine:
    """Learning-rate multiplier: linear from warmup_lr to lr over ``warmup`` steps, then cosine to min_lr."""

    lr: float
    min_lr: float
    warmup_lr: float
    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            value = self.warmup_lr + (self.lr - self.warmup_lr) * step / self.warmup
        else:
            span = max(1, self.total - self.warmup)
            progress = min(1.0, (step - self.warmup) / span)
            value = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        return value / self.lr if self.lr else 0.0


def _schedule(config: TrainConfig, total_steps: int) -> WarmupCosine:
    return WarmupCosine(config.lr, config.min_lr, min(config.warmup_lr, config.lr),
                        min(config.warmup_steps, total_steps), total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """LambdaLR over optimizer steps; its state (a step count) is checkpointed."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total_steps))


def apply_schedule(scheduler, config: TrainConfig, total_steps: int) -> float:
    """Put this config's schedule into a scheduler loaded from a checkpoint, at the step it reached; returns the lr.

    LambdaLR's state holds the checkpointed run's rates (its base lrs and the WarmupCosine's fields),
    and the optimizer's its last lr: a run resumed with another ``lr`` (after a divergence, say) would
    go on at the old one. With the same config this changes nothing.
    """
    groups = scheduler.optimizer.param_groups
    scheduler.lr_lambdas = [_schedule(config, total_steps) for _ in groups]
    scheduler.base_lrs = [config.lr for _ in groups]
    rates = [base * f(scheduler.last_epoch) for base, f in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(groups, rates):
        group["lr"], group["initial_lr"] = lr, config.lr
    scheduler._last_lr = rates
    return rates[0]


def cast_frozen_matmul_weights(model: nn.Module, dtype: torch.dtype) -> int:
    """Store frozen Linear/Conv weights and biases in ``dtype``; returns how many parameters were cast.

    Under autocast to ``dtype`` these layers compute with a ``dtype`` copy of their weights anyway, so
    the results are identical; a frozen weight needs no fp32 master copy, and this halves its memory
    and saves the cast at every step. Trainable parameters stay fp32 (the optimizer updates them).
    """
    cast = 0
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            for p in module.parameters(recurse=False):
                if not p.requires_grad and p.dtype != dtype:
                    p.data = p.data.to(dtype)
                    cast += p.numel()
    return cast


def enable_gradient_checkpointing(model: DualEncoder) -> list[str]:
    """Turn on activation recomputation in each tower that supports it; returns the towers that do."""
    done = []
    for name, tower in (("text", model.text), ("vision", model.vision)):
        inner = tower.model
        # Non-reentrant: frozen layers have inputs without grad, which the reentrant variant mishandles.
        if hasattr(inner, "activation_checkpointing_enable"):     # transformers >= 5
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            done.append(name)
        elif hasattr(inner, "gradient_checkpointing_enable"):     # transformers 4
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            done.append(name)
        elif hasattr(inner, "set_grad_checkpointing"):            # timm
            try:
                inner.set_grad_checkpointing(True)
                done.append(name)
            except (AssertionError, NotImplementedError):
                logger.warning("vision tower %s does not support gradient checkpointing", tower.name)
    return done


# ---- one optimizer step -------------------------------------------------------------------------

@dataclass
class Training:
    """The prepared objects of a run (or of a benchmark)."""

    accelerator: object
    model: nn.Module           # ContrastiveModel, wrapped by Accelerate (DDP ...)
    dual: DualEncoder          # the same parameters, unwrapped
    optimizer: object
    scheduler: object
    params: list[nn.Parameter]
    config: TrainConfig


def prepare_training(accelerator, model: DualEncoder, config: TrainConfig, total_steps: int) -> Training:
    """Optimizer and schedule on the trainable parameters; model and optimizer through ``accelerator.prepare``."""
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.cast_frozen_weights and config.mixed_precision in ("bf16", "fp16"):
        cast_frozen_matmul_weights(model, torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16)
    model.train()
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    wrapped, optimizer = accelerator.prepare(ContrastiveModel(model), optimizer)
    # The scheduler is stepped by hand once per optimizer step (Accelerate would step it once per
    # process); registering it puts its state into save_state.
    accelerator.register_for_checkpointing(scheduler)
    params = [p for p in model.parameters() if p.requires_grad]
    return Training(accelerator, wrapped, model, optimizer, scheduler, params, config)


def _agree_present(accelerator, micro_batches: list[dict | None]) -> list[bool]:
    """Which micro-batches every process has (a batch whose images were all unreadable is None)."""
    present = torch.tensor([b is not None for b in micro_batches], dtype=torch.int32, device=accelerator.device)
    if accelerator.num_processes > 1:
        torch.distributed.all_reduce(present, op=torch.distributed.ReduceOp.MIN)
    return present.bool().tolist()


def training_step(t: Training, micro_batches: list[dict | None]) -> dict:
    """Forward, backward and one optimizer step over ``micro_batches`` (gradient accumulation).

    Returns ``loss`` (mean over micro-batches, this process), ``lr`` used, ``grad_norm``, ``used``
    (micro-batches every process had) and ``nonfinite`` (the step was skipped: ``step_is_finite``).
    """
    acc, cfg = t.accelerator, t.config
    present = _agree_present(acc, micro_batches)
    batches = [b for b, ok in zip(micro_batches, present) if ok]
    lr = t.optimizer.param_groups[0]["lr"]
    losses = []
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        # Gradients are all-reduced once, on the last micro-batch.
        with contextlib.nullcontext() if last else acc.no_sync(t.model):
            image, text, scale = t.model(batch["pixels"].to(acc.device), batch["input_ids"].to(acc.device),
                                         batch["attention_mask"].to(acc.device))
            # A batch without ids (a synthetic one) has each pair as its own only positive.
            ids = batch.get(f"{cfg.positives}_ids") if cfg.positives != "none" else None
            loss = contrastive_loss(image, text, scale, local_loss=cfg.local_loss, ids=ids)
            acc.backward(loss / len(batches))
        losses.append(loss.detach())
    grad_norm, finite = None, True
    if batches:
        grad_norm = acc.clip_grad_norm_(t.params, cfg.max_grad_norm if cfg.max_grad_norm is not None
                                        else float("inf"))
        finite = step_is_finite(acc, losses, grad_norm)
        if finite or acc.scaler is not None:  # fp16: the grad scaler skips a non-finite step itself
            t.optimizer.step()
    t.scheduler.step()  # a skipped step still moves the schedule on, as its batch was consumed
    t.optimizer.zero_grad(set_to_none=True)
    loss = torch.stack(losses).mean() if losses else torch.tensor(float("nan"), device=acc.device)
    return {"loss": loss, "lr": lr, "grad_norm": grad_norm, "used": len(batches), "nonfinite": not finite}


def step_is_finite(accelerator, losses: list[torch.Tensor], grad_norm: torch.Tensor) -> bool:
    """Whether every process's loss and the gradient norm are finite (every process gets the same answer).

    Under fp16 an infinite gradient is the grad scaler's business (it skips the step and lowers the
    scale, often several times in a row at the start), so only the loss counts there.
    """
    bad = ~torch.isfinite(torch.stack(losses)).all()
    if accelerator.scaler is None:
        bad = bad | ~torch.isfinite(torch.as_tensor(grad_norm, device=bad.device)).all()
    flag = bad.to(torch.int32).reshape(1)
    if accelerator.num_processes > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return not bool(flag.item())


class Diverged(ValueError):
    """Too many non-finite steps in a row; the message names the last checkpoint to resume from."""


def diverged_message(run_dir: Path, step: int, in_a_row: int, config: TrainConfig) -> str:
    """One line: where the run stopped and what to resume."""
    last = checkpoint.latest_checkpoint(run_dir)
    where = (f"the last good checkpoint is {last} (step {int(last.name[5:])}): resume it with --resume and a "
             "lower --lr" if last is not None else
             f"no checkpoint was written before it (save_every {config.save_every}): start again with --resume "
             "and a lower --lr")
    return (f"step {step}: the loss or gradient norm was not finite in {in_a_row} steps in a row "
            f"(max_nonfinite_steps {config.max_nonfinite_steps}), so the run stopped; {where}")


NONFINITE_TEST_ENV = "MLILT_TEST_NAN_AT_STEPS"


class NonfiniteAtSteps:
    """For tests: a forward hook making the loss non-finite at the optimizer steps in $MLILT_TEST_NAN_AT_STEPS."""

    def __init__(self, steps: set[int]):
        self.steps, self.step = steps, 0

    @classmethod
    def install(cls, model: nn.Module) -> "NonfiniteAtSteps | None":
        value = os.environ.get(NONFINITE_TEST_ENV, "").strip()
        if not value:
            return None
        try:
            hook = cls({int(x) for x in value.split(",") if x.strip()})
        except ValueError:
            raise ValueError(f"${NONFINITE_TEST_ENV}: expected comma-separated step numbers, got {value!r}") from None
        model.register_forward_hook(hook)
        return hook

    def __call__(self, module, args, output):
        if self.step in self.steps:
            image, text, scale = output
            return image, text, scale * float("nan")
        return output


# ---- the run ------------------------------------------------------------------------------------

def _trackers(config: TrainConfig) -> list:
    trackers: list = [JsonlTracker(config.run_dir)]
    if config.tensorboard:
        from accelerate.utils import is_tensorboard_available

        if is_tensorboard_available():
            trackers.append("tensorboard")
    return trackers


def _load_pairs(config: TrainConfig):
    from mlilt.data.pairs import load_pairs

    pairs = load_pairs(config.train_data, format=config.train_format, image_root=config.image_root,
                       split=config.train_split, decode=False)
    if is_streamed(pairs):
        if config.max_steps is None:
            raise ValueError(f"config field max_steps: train_data {config.train_data} is streamed and has no known "
                             "length, so the run needs max_steps (the schedule spans them)")
        return pairs
    if len(pairs) < config.batch_size:
        raise ValueError(f"train_data {config.train_data}: {len(pairs)} pairs, fewer than one global batch "
                         f"(batch_size {config.batch_size})")
    return pairs


def is_streamed(pairs) -> bool:
    """A ``datasets.IterableDataset`` (webdataset shards): no length, read in order."""
    return not hasattr(pairs, "__len__")


def _batches(pairs, collate, config: TrainConfig, rank: int, world: int, per_process: int, step: int,
             saved: dict | None):
    """The run's micro-batches from optimizer step ``step`` on (``saved``: the checkpoint's trainer state)."""
    if is_streamed(pairs):
        state = None
        if saved is not None:
            streams = saved.get("streams")
            if not streams or len(streams) != world:
                raise ValueError(f"the checkpoint holds the stream positions of {len(streams or [])} processes, this "
                                 f"run has {world}; a streamed run resumes with the same number of processes")
            state = streams[rank]
        return StreamedBatches(pairs, collate, seed=config.seed, accum=config.grad_accum_steps, rank=rank,
                               world=world, per_process=per_process, num_workers=config.num_workers,
                               shuffle_buffer=config.shuffle_buffer, state=state)
    return IndexedBatches(pairs, collate, seed=config.seed, batch_size=config.batch_size,
                          accum=config.grad_accum_steps, rank=rank, world=world, num_workers=config.num_workers,
                          start_step=step)


def _collator(model: DualEncoder, config: TrainConfig):
    from mlilt.data.images import PairCollator
    from mlilt.data.transforms import train_draft, train_transform

    data_config, img_size = model.vision.data_config, config.model.vision.img_size
    transform = train_transform(data_config, img_size, randaugment=config.randaugment)
    # Large JPEGs decode at a reduced scale where every random crop is downsampled anyway.
    return PairCollator(model.text.tokenize, transform, draft=train_draft(data_config, img_size))


def _seed_everything(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed % 2**32)


def _resume_schedule(accelerator, t: Training, config: TrainConfig, total_steps: int, resumed: Path) -> None:
    """This config's learning rates from the resumed step on, saying so when they differ from the checkpoint's."""
    before = t.optimizer.param_groups[0]["lr"]
    after = apply_schedule(t.scheduler, config, total_steps)
    if accelerator.is_main_process and not math.isclose(before, after, rel_tol=1e-9, abs_tol=0.0):
        print(f"resuming {resumed} with this config's schedule (lr {config.lr:g}): learning rate {after:.3g} "
              f"at step {t.scheduler.last_epoch}, where the checkpoint's run had {before:.3g}", file=sys.stderr)


def _on_nonfinite(accelerator, progress, run_dir: Path, step: int, in_a_row: int, config: TrainConfig) -> None:
    """Say a step was skipped; stop the run (every process alike) after ``max_nonfinite_steps`` in a row."""
    if accelerator.is_main_process:
        progress.write(f"step {step}: the loss or gradient norm is not finite; the step is skipped (no update; "
                       f"{in_a_row} in a row)", file=sys.stderr)
    if in_a_row >= config.max_nonfinite_steps:
        progress.close()
        accelerator.end_training()
        raise Diverged(diverged_message(run_dir, step, in_a_row, config))


def _evaluate(accelerator, validator: Validator, model: DualEncoder, step: int, progress) -> None:
    """Score the model on the main process (the others wait), log it, keep it if it is the best so far."""
    if accelerator.is_main_process:
        values = validator.evaluate(model, step)
        accelerator.log(values, step=step)
        best = validator.is_best(values)
        if best:
            validator.save_best(model, step, values)
        shown = validator.keep_best or "mean"
        progress.write(f"step {step}: {validator.eval_set.name} {shown} {values['eval/' + shown]:.2f} "
                       f"({values['eval_s']:.1f} s)" + (", the best so far: kept in best/" if best else ""),
                       file=sys.stderr)
    accelerator.wait_for_everyone()


def run_summary(step: int, trained_from: int, skipped: int, nonfinite: int) -> str:
    """The end-of-run line: images skipped (and steps skipped) in the steps actually trained."""
    line = f"{skipped} unreadable images were skipped in the {step} steps trained"
    if trained_from:
        line += f" (steps {trained_from + 1}-{step} in this session)"
    if nonfinite:
        line += f"; {nonfinite} steps were skipped for a non-finite loss or gradient norm"
    return line


def train(config: TrainConfig) -> Path:
    """Train per ``config``; returns the run directory (final model in ``RUN_DIR/model``)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, gather_object
    from tqdm.auto import tqdm

    config.validate()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_dir = Path(config.run_dir)
    if config.resume and (run_dir / FINAL_MODEL_DIR / CONFIG_NAME).is_file():
        try:
            check_trained_file(run_dir / FINAL_MODEL_DIR / WEIGHTS_NAME)
            logger.warning("%s has finished (its %s/ is written): nothing to resume", run_dir, FINAL_MODEL_DIR)
            return run_dir
        except DamagedFileError as err:
            if not checkpoint.list_checkpoints(run_dir):
                raise
            logger.warning("%s: damaged (%s); resuming from the last checkpoint to write it again",
                           err.path, err.reason)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, log_with=_trackers(config),
                              project_dir=str(run_dir), step_scheduler_with_optimizer=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        raise ValueError(f"accelerate config: {accelerator.distributed_type.name} is not supported yet (checkpoints "
                         "save the trained part from unsharded parameters); use multi-GPU DDP -- the frozen towers "
                         "are replicated, and mixed_precision bf16 stores them in bf16")
    if config.batch_size % (config.grad_accum_steps * world):
        raise ValueError(f"config field batch_size: {config.batch_size} is not divisible by grad_accum_steps x "
                         f"processes = {config.grad_accum_steps} x {world}")

    resume_from = None
    if config.resume:
        if accelerator.is_main_process:
            checkpoint.remove_incomplete(run_dir)
        accelerator.wait_for_everyone()
        resume_from = checkpoint.latest_checkpoint(run_dir)
        if resume_from is None and accelerator.is_main_process:
            truncate_metrics(run_dir, 0)  # a start again (a run that stopped before its first checkpoint)
    elif checkpoint.list_checkpoints(run_dir) or (run_dir / FINAL_MODEL_DIR).exists():
        raise ValueError(f"run_dir {run_dir} already holds a run; pass --resume to continue it "
                         "or choose another --run_dir")

    pairs = _load_pairs(config)
    _seed_everything(config.seed)  # the same initialisation on every process
    model = build_model(config.model)
    total_steps = config.max_steps or config.epochs * (len(pairs) // config.batch_size)
    t = prepare_training(accelerator, model, config, total_steps)
    collate = _collator(model, config)

    step, skipped, nonfinite, saved = 0, 0, 0, None
    if resume_from is not None:
        resume_from, saved = checkpoint.load_latest_checkpoint(accelerator, model, run_dir)  # RNG included
        if saved.get("batch_size", config.batch_size) != config.batch_size:
            raise ValueError(f"config field batch_size: {config.batch_size}, but {resume_from} was trained with "
                             f"{saved['batch_size']}; the data position of a resumed run depends on it")
        step, skipped, nonfinite = saved["step"], saved.get("skipped_images", 0), saved.get("nonfinite_steps", 0)
        _resume_schedule(accelerator, t, config, total_steps, resume_from)
        if accelerator.is_main_process:
            truncate_metrics(run_dir, step)
            logger.info("resuming %s from step %d", run_dir, step)
    else:
        _seed_everything(mixed_seed(config.seed, 1, rank))  # dropout differs between processes
    if accelerator.is_main_process:
        save_yaml(config, run_dir / RUN_CONFIG_NAME)
    accelerator.init_trackers("tensorboard")  # the name is TensorBoard's folder in RUN_DIR
    validator = Validator.for_run(config, accelerator.device)
    poison = NonfiniteAtSteps.install(accelerator.unwrap_model(t.model))

    per_process = config.batch_size // (config.grad_accum_steps * world)
    data = _batches(pairs, collate, config, rank, world, per_process, step, saved)
    progress = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                    disable=not accelerator.is_local_main_process)
    window: list[torch.Tensor] = []
    window_start = time.perf_counter()
    state = dict(saved or {}, step=step)  # a checkpoint of an older mlilt may hold the last step already
    epoch_seen, in_a_row, trained_from = math.floor(data.epoch), 0, step
    while step < total_steps:
        micro = data.next_step()
        skipped_here = sum(per_process if b is None else int(b["skipped"]) for b in micro)
        if poison is not None:
            poison.step = step + 1
        out = training_step(t, micro)
        step += 1
        window.append(out["loss"])
        skipped += int(accelerator.reduce(torch.tensor(skipped_here, device=accelerator.device), "sum"))
        in_a_row = in_a_row + 1 if out["nonfinite"] else 0
        nonfinite += int(out["nonfinite"])
        if step % config.log_every == 0 or step == total_steps or out["nonfinite"]:
            loss = accelerator.reduce(torch.stack(window).mean(), "mean")
            elapsed = time.perf_counter() - window_start
            values = {"loss": float(loss), "lr": out["lr"], "temperature": float(model.temperature.detach()),
                      "epoch": data.epoch, "skipped_images": skipped, "nonfinite_steps": nonfinite,
                      "step_s": elapsed / len(window), "pairs_per_s": len(window) * config.batch_size / elapsed}
            if out["grad_norm"] is not None:
                values["grad_norm"] = float(out["grad_norm"])
            accelerator.log(values, step=step)
            progress.set_postfix(loss=f"{float(loss):.4f}", lr=f"{out['lr']:.2e}", refresh=False)
            window, window_start = [], time.perf_counter()
        progress.update(1)
        if out["nonfinite"]:
            _on_nonfinite(accelerator, progress, run_dir, step, in_a_row, config)
        epoch_ended, epoch_seen = math.floor(data.epoch) > epoch_seen, max(epoch_seen, math.floor(data.epoch))
        if validator is not None and validator.due(step, epoch_ended, step == total_steps):
            evaluating = time.perf_counter()
            _evaluate(accelerator, validator, model, step, progress)
            window_start += time.perf_counter() - evaluating  # step_s and pairs_per_s time training only
        if step % config.save_every == 0 or step == total_steps:
            state = {"step": step, "total_steps": total_steps, "skipped_images": skipped, "processes": world,
                     "batch_size": config.batch_size, "nonfinite_steps": nonfinite}
            if isinstance(data, StreamedBatches):
                state["streams"] = gather_object([data.state()])  # every process's own position, by rank
            else:
                state.update(data.state())
            if step < total_steps:  # the last step's state goes with the final model (no optimizer state)
                checkpoint.save_checkpoint(accelerator, model, run_dir, step, state, keep=config.keep_checkpoints)
    del data
    progress.close()
    if accelerator.is_main_process:
        print(run_summary(step, trained_from, skipped, nonfinite), file=sys.stderr)
    checkpoint.save_final_model(accelerator, model, run_dir, state)
    # Drop every reference to the wrapped model before the process group goes (gloo aborts otherwise).
    del t, model, collate
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()
    return run_dir
