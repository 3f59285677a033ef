"""Checkpoints of a run: the trained part of the model, the optimizer, schedule, RNG and data position.

    RUN_DIR/checkpoints/step_00000100/
        model_config.json, trained.safetensors   what trains, as ``model.save_trained`` writes it
        trainer_state.json                        step, epoch, images skipped, ... (the data position)
        state/                                    Accelerate ``save_state``: optimizer, scheduler,
                                                  per-process RNG, grad scaler -- model weights left out
    RUN_DIR/model/                                the final model (``mlilt.load(RUN_DIR)``) and its
                                                  trainer_state.json; no optimizer state
    RUN_DIR/best/                                 the same for the best evaluation (``keep_best``), with
                                                  its step, metric and value

The frozen base weights are never written: they are rebuilt from the names in ``model_config.json``.
Every directory is written under a temporary name and renamed when complete, so a killed run leaves
either a whole checkpoint or none; ``latest_checkpoint`` only sees whole ones. Checkpoints are for
resuming, so the last step writes only ``model/``: a finished run keeps no optimizer state (for
``clip`` on e5-small that is ~1 GB) and no second copy of its weights.

    >>> path = save_checkpoint(accelerator, model, run_dir, step=100, state={"step": 100}, keep=3)
    >>> state = load_checkpoint(accelerator, model, latest_checkpoint(run_dir))
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from mlilt.model import (CHECKPOINTS_DIR, FINAL_MODEL_DIR, WEIGHTS_NAME, DamagedFileError, DualEncoder,
                         read_trained_state)

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
BEST_MODEL_DIR = "best"  # the best evaluation's model (keep_best), beside FINAL_MODEL_DIR
ACCELERATE_STATE_DIR = "state"
_TMP_PREFIX = ".tmp-"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as (step, path), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    for path in root.glob("step_*"):
        if path.is_dir() and path.name[5:].isdigit() and (path / TRAINER_STATE_NAME).is_file():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def remove_incomplete(run_dir: str | Path) -> None:
    """Delete temporaries left by a run killed while writing."""
    for parent in (Path(run_dir) / CHECKPOINTS_DIR, Path(run_dir)):
        for tmp in parent.glob(_TMP_PREFIX + "*"):
            shutil.rmtree(tmp, ignore_errors=True)


def _skip_model_weights_on_save(models, weights, output_dir):
    weights.clear()  # the trained part is in trained.safetensors; the frozen part is never saved


def _skip_model_weights_on_load(models, input_dir):
    models.clear()


def save_checkpoint(accelerator, model: DualEncoder, run_dir: str | Path, step: int, state: dict,
                    keep: int = 0) -> Path:
    """Write checkpoint ``step`` atomically (collective: every process calls it); keep the last ``keep``."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    final = root / checkpoint_name(step)
    tmp = root / f"{_TMP_PREFIX}{checkpoint_name(step)}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    hook = accelerator.register_save_state_pre_hook(_skip_model_weights_on_save)
    try:
        accelerator.save_state(str(tmp / ACCELERATE_STATE_DIR))  # optimizer, schedulers, RNG per process
    finally:
        hook.remove()
    if accelerator.is_main_process:
        model.save_trained(tmp)
        (tmp / TRAINER_STATE_NAME).write_text(json.dumps(dict(state, step=step), indent=2))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again (a resumed run): replace it
            shutil.rmtree(final)
        tmp.rename(final)
        if keep:
            for _, old in list_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, model: DualEncoder, path: str | Path) -> dict:
    """Restore the trained parameters, optimizer, schedulers and RNG from ``path``; return its trainer state."""
    path = Path(path)
    # A damaged file raises before anything is restored, so that the caller can try an older checkpoint.
    model.load_trained_state_dict(read_trained_state(path / WEIGHTS_NAME), source=str(path / WEIGHTS_NAME))
    hook = accelerator.register_load_state_pre_hook(_skip_model_weights_on_load)
    try:
        accelerator.load_state(str(path / ACCELERATE_STATE_DIR))
    finally:
        hook.remove()
    return json.loads((path / TRAINER_STATE_NAME).read_text())


def load_latest_checkpoint(accelerator, model: DualEncoder, run_dir: str | Path) -> tuple[Path, dict]:
    """``load_checkpoint`` of the newest checkpoint whose trained state reads; a damaged one is skipped, saying so."""
    found = [path for _, path in list_checkpoints(run_dir)]
    for i in reversed(range(len(found))):
        try:
            return found[i], load_checkpoint(accelerator, model, found[i])
        except DamagedFileError as err:
            if i == 0:
                raise ValueError(f"{err.path}: damaged ({err.reason}), and no earlier checkpoint of {run_dir} "
                                 "reads; train again in a new --run_dir") from err
            if accelerator.is_main_process:
                logger.warning("%s: damaged (%s); resuming from the previous checkpoint, %s",
                               err.path, err.reason, found[i - 1].name)
    raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from")


def save_final_model(accelerator, model: DualEncoder, run_dir: str | Path, state: dict) -> Path:
    """``RUN_DIR/model/``: the trained model and its trainer state, written atomically (main process)."""
    final = Path(run_dir) / FINAL_MODEL_DIR
    if accelerator.is_main_process:
        save_model_dir(model, run_dir, FINAL_MODEL_DIR, state)
    accelerator.wait_for_everyone()
    return final


def save_model_dir(model: DualEncoder, run_dir: str | Path, name: str, state: dict) -> Path:
    """``RUN_DIR/<name>/``: the trained part and ``state`` as trainer_state.json, replacing it atomically.

    Call it on one process only. The old directory is removed just before the rename, so a kill leaves
    either it or the new one (``remove_incomplete`` clears the temporary).
    """
    final = Path(run_dir) / name
    tmp = Path(run_dir) / f"{_TMP_PREFIX}{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_trained(tmp)
    (tmp / TRAINER_STATE_NAME).write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def safetensors_nbytes(shapes: dict[str, tuple[tuple[int, ...], str]], metadata: dict | None = None) -> int:
    """Size in bytes of a safetensors file holding tensors ``{name: (shape, dtype)}`` (dtype as 'F32')."""
    itemsize = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (shape, dtype) in sorted(shapes.items()):
        size = itemsize[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header_len = len(json.dumps(header, separators=(",", ":")).encode())
    header_len += -header_len % 8  # the format pads the header to 8 bytes
    return 8 + header_len + offset


def trained_state_nbytes(model: DualEncoder) -> int:
    """Bytes ``model.save_trained`` writes to trained.safetensors; works on a model built on the meta device."""
    names = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16", "torch.float64": "F64"}
    shapes = {k: (tuple(v.shape), names[str(v.dtype)]) for k, v in model.trained_state_dict().items()}
    return safetensors_nbytes(shapes, metadata={"format": "pt"})
