"""What one training step computes and copies: its FLOPs, its ``aten::copy_`` calls, a torch.profiler table.

Run by ``train_step.py``'s children (``count_flops`` unless ``--no-flops``, ``count_copies`` unless
``--memory-budget``, ``profile_step`` with ``--profile``); ``tests/test_bf16_ops.py`` counts copies with it.
Not a test.
"""

from __future__ import annotations

import contextlib

# Bytes per element of the dtypes as torch.profiler names them (``record_shapes``' input_dtypes).
PROFILER_DTYPE_BYTES = {"double": 8, "float": 4, "c10::BFloat16": 2, "c10::Half": 2, "long int": 8, "int": 4,
                        "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1}


def count_flops(dual, batch: dict, autocast=contextlib.nullcontext) -> dict:
    """FLOPs of one forward (under ``autocast()``, as training runs it) and one backward (FlopCounterMode), split
    into adapters and the rest."""
    from torch.utils.flop_counter import FlopCounterMode

    from mlilt.train.loop import ContrastiveModel
    from mlilt.train.loss import contrastive_loss

    model = ContrastiveModel(dual)

    def adapter_flops(per_module: dict) -> int:
        # Module counts include their submodules: take each adapter once, at the adapter itself.
        return sum(sum(ops.values()) for name, ops in per_module.items() if name.endswith(".adapter"))

    # One counter for both passes: it attributes backward FLOPs to modules through hooks set in forward.
    with FlopCounterMode(display=False) as mode:
        with autocast():  # bf16 frozen weights (cast_frozen_matmul_weights) need it, as in training
            embeddings = model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
        loss = contrastive_loss(*embeddings)
        forward, forward_adapters = mode.get_total_flops(), adapter_flops(mode.get_flop_counts())
        loss.backward()
        total, total_adapters = mode.get_total_flops(), adapter_flops(mode.get_flop_counts())
    counts = {"forward_flops": forward, "forward_adapter_flops": forward_adapters,
              "backward_flops": total - forward, "backward_adapter_flops": total_adapters - forward_adapters}
    dual.zero_grad(set_to_none=True)
    counts["flops"] = counts["forward_flops"] + counts["backward_flops"]
    counts["adapter_flops"] = counts["forward_adapter_flops"] + counts["backward_adapter_flops"]
    counts["tower_flops"] = counts["flops"] - counts["adapter_flops"]  # tower matmuls, attention, head
    return counts


def count_copies(t, batch: dict) -> dict:
    """``aten::copy_`` calls of one ``training_step`` (dtype casts, contiguous and bias copies) and the bytes they move.

    A copy reads one source element per destination element and writes it: ``copy_bytes`` sums both.
    ``casts`` are the copies that change the dtype. A copy into a 0-d tensor is a scalar conversion (a
    Python number made a tensor, e.g. AdamW's step counter of each trained tensor, on the CPU), counted
    apart as ``scalar_copies``: a few bytes each, no data moved.
    """
    import math

    from torch.profiler import ProfilerActivity, profile

    from mlilt.train.loop import training_step

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        training_step(t, [batch])
    counts = {"copies": 0, "casts": 0, "copy_bytes": 0, "scalar_copies": 0}
    for event in prof.events():
        if event.name != "aten::copy_":
            continue
        (destination, *_), (to_type, from_type, *_) = event.input_shapes, event.input_dtypes
        if not destination:
            counts["scalar_copies"] += 1
            continue
        counts["copies"] += 1
        counts["casts"] += to_type != from_type
        counts["copy_bytes"] += math.prod(destination) * (PROFILER_DTYPE_BYTES[to_type]
                                                          + PROFILER_DTYPE_BYTES[from_type])
    return counts


def profile_step(t, batch: dict, rows: int) -> str:
    """torch.profiler table of one training step, top ``rows`` ops by self CPU (or CUDA) time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mlilt.train.loop import training_step

    cuda = torch.cuda.is_available() and batch["pixels"].is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        training_step(t, [batch])
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=48)
