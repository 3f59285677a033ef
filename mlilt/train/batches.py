"""A seeded, resumable order of training batches, the same whatever the number of processes.

Epoch ``e`` is a permutation of the pairs drawn from ``(seed, e)``, cut to whole global batches.
Optimizer step ``s`` of the epoch takes pairs ``[s*G, (s+1)*G)`` of it; each of the ``A``
accumulation micro-batches takes the next ``G/A`` of those, and process ``r`` of ``N`` the ``r``-th
slice of ``G/(A*N)``. So the data seen at a step is a function of (seed, step) alone: resuming needs
only the step, and the augmentation of each micro-batch is seeded from its first pair, not from
whichever DataLoader worker happens to build it.

    >>> loader = batch_loader(pairs, collate, seed=0, batch_size=512, accum=1, rank=0, world=2,
    ...                       epoch=3, start_step=100, num_workers=4)
    >>> for micro_batch in loader: ...          # this process's micro-batches from step 100 of epoch 3

A streamed source (webdataset shards: no length, no random access) cannot be ordered that way.
:class:`StreamedBatches` shuffles it with ``datasets``' shard shuffle and buffer (seeded by
(seed, epoch)) and gives each process its shards (``split_dataset_by_node``). Each process reads its
share in order; DataLoader workers only decode and augment. It remembers how many records it has
consumed in the epoch; resuming replays the same stream and drops that many records
*before* any image is decoded, so a resumed run sees exactly the batches an uninterrupted one would
(same number of processes; any number of workers). A process whose share runs out starts its next
epoch on its own.

    >>> data = StreamedBatches(shards, collate, seed=0, per_process=64, accum=1, rank=0, world=2,
    ...                        num_workers=4, shuffle_buffer=10_000)
    >>> micro_batches = data.next_step(); saved = data.state()      # later: StreamedBatches(..., state=saved)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def mixed_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from a few integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_permutation(num_pairs: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of all pairs in ``epoch``."""
    generator = torch.Generator().manual_seed(mixed_seed(seed, epoch))
    return torch.randperm(num_pairs, generator=generator)


class StepOrder(Sampler):
    """This process's ``(epoch, pair index)`` keys for the steps ``[start_step, steps_per_epoch)`` of an epoch."""

    def __init__(self, num_pairs: int, *, seed: int, epoch: int, batch_size: int, accum: int = 1,
                 rank: int = 0, world: int = 1, start_step: int = 0):
        if batch_size % (accum * world):
            raise ValueError(f"batch_size {batch_size} is not divisible by grad_accum_steps x processes "
                             f"= {accum} x {world}")
        self.num_pairs, self.seed, self.epoch = num_pairs, seed, epoch
        self.batch_size, self.accum, self.rank, self.world = batch_size, accum, rank, world
        self.micro = batch_size // accum          # pairs per micro-batch over all processes
        self.per_process = self.micro // world    # pairs per micro-batch on this process
        self.start_step = start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.num_pairs // self.batch_size

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_step) * self.accum * self.per_process

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = epoch_permutation(self.num_pairs, self.seed, self.epoch).tolist()
        for step in range(self.start_step, self.steps_per_epoch):
            for micro in range(self.accum):
                begin = step * self.batch_size + micro * self.micro + self.rank * self.per_process
                for index in order[begin:begin + self.per_process]:
                    yield (self.epoch, index)


class KeyedPairs(Dataset):
    """Records of a pairs table looked up by ``(epoch, index)``; the key travels with the record."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        return dict(self.pairs[int(index)], key=(epoch, int(index)))


class SeededCollate:
    """Runs a collator with torch's RNG seeded from (seed, key of the first record) and restored afterwards."""

    def __init__(self, collate: Callable[[list[dict]], dict | None], seed: int):
        self.collate, self.seed = collate, seed

    def __call__(self, records: list[dict]) -> dict | None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mixed_seed(self.seed, *records[0]["key"]))
            return self.collate(records)


def batch_loader(pairs, collate: Callable[[list[dict]], dict | None], *, seed: int, batch_size: int,
                 accum: int, rank: int, world: int, epoch: int, start_step: int = 0,
                 num_workers: int = 0) -> DataLoader:
    """This process's micro-batches of ``epoch`` from ``start_step`` on, in the order described above."""
    order = StepOrder(len(pairs), seed=seed, epoch=epoch, batch_size=batch_size, accum=accum,
                      rank=rank, world=world, start_step=start_step)
    # A private generator: creating the iterator draws worker seeds from it, not from the global RNG
    # that dropout uses, so a resumed run's dropout matches an uninterrupted one.
    generator = torch.Generator().manual_seed(mixed_seed(seed, epoch, start_step, rank))
    return DataLoader(KeyedPairs(pairs), batch_size=order.per_process, sampler=order,
                      collate_fn=SeededCollate(collate, seed), num_workers=num_workers,
                      generator=generator, persistent_workers=False)


class IndexedBatches:
    """This process's micro-batches of a table with random access, step after step, across epochs."""

    def __init__(self, pairs, collate: Callable[[list[dict]], dict | None], *, seed: int, batch_size: int,
                 accum: int, rank: int, world: int, num_workers: int = 0, start_step: int = 0):
        self.pairs, self.collate, self.seed, self.batch_size = pairs, collate, seed, batch_size
        self.accum, self.rank, self.world, self.num_workers = accum, rank, world, num_workers
        self.steps_per_epoch = len(pairs) // batch_size
        self.step = start_step
        self._batches: Iterator | None = None

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def next_step(self) -> list[dict | None]:
        """The ``accum`` micro-batches of the next optimizer step."""
        epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
        if self._batches is None or in_epoch == 0:
            self._batches = None  # let the last epoch's workers go first
            self._batches = iter(batch_loader(self.pairs, self.collate, seed=self.seed, batch_size=self.batch_size,
                                              accum=self.accum, rank=self.rank, world=self.world, epoch=epoch,
                                              start_step=in_epoch, num_workers=self.num_workers))
        self.step += 1
        return [next(self._batches) for _ in range(self.accum)]

    def state(self) -> dict:
        epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
        return {"epoch": epoch, "step_in_epoch": in_epoch, "steps_per_epoch": self.steps_per_epoch}


class StreamedMicroBatch(NamedTuple):
    batch: dict | None        # the collated micro-batch (None: none of its images was readable)
    next_position: int        # records of this epoch's stream consumed, this micro-batch's included


class _StreamedRecordBatches(Sampler):
    """Reads the stream in the calling process and yields its records ``per_process`` at a time, from ``start``.

    The records themselves are the DataLoader's "indices": workers only decode and augment them, in
    order, so the batches do not depend on the number of workers. Records before ``start`` are read
    and dropped undecoded.
    """

    def __init__(self, stream, *, epoch: int, rank: int, start: int, per_process: int):
        self.stream, self.epoch, self.rank, self.start, self.per_process = stream, epoch, rank, start, per_process

    def __iter__(self) -> Iterator[list[dict]]:
        batch: list[dict] = []
        for position, record in enumerate(self.stream):
            if position < self.start:
                continue
            batch.append(dict(record, key=(self.epoch, self.rank, position)))  # seeds the augmentation
            if len(batch) == self.per_process:
                yield batch
                batch = []


class _RecordsAsIndices(Dataset):
    def __getitem__(self, record: dict) -> dict:
        return record


class _PositionedCollate:
    def __init__(self, collate: Callable[[list[dict]], dict | None], seed: int):
        self.seeded = SeededCollate(collate, seed)

    def __call__(self, records: list[dict]) -> StreamedMicroBatch:
        return StreamedMicroBatch(self.seeded(records), records[-1]["key"][-1] + 1)


class StreamedBatches:
    """This process's micro-batches of a streamed table (``datasets.IterableDataset``), resumable; see the module."""

    def __init__(self, stream, collate: Callable[[list[dict]], dict | None], *, seed: int, per_process: int,
                 accum: int, rank: int, world: int, num_workers: int = 0, shuffle_buffer: int = 10_000,
                 state: dict | None = None):
        from datasets.distributed import split_dataset_by_node

        shuffled = stream.shuffle(seed=seed % 2**32, buffer_size=max(1, shuffle_buffer))  # shards, then a buffer
        self.stream = split_dataset_by_node(shuffled, rank=rank, world_size=world)
        self.collate, self.seed, self.per_process, self.accum = collate, seed, per_process, accum
        self.num_workers, self.rank = num_workers, rank
        self.epoch = int(state["epoch"]) if state else 0
        self.position = int(state["position"]) if state else 0
        self._batches: Iterator[StreamedMicroBatch] | None = None

    def _open_epoch(self) -> Iterator[StreamedMicroBatch]:
        self.stream.set_epoch(self.epoch)  # datasets reshuffles shards and buffer with (seed + epoch)
        records = _StreamedRecordBatches(self.stream, epoch=self.epoch, rank=self.rank, start=self.position,
                                         per_process=self.per_process)
        # A private generator, as in batch_loader: the global RNG (dropout) must not feel the loader.
        generator = torch.Generator().manual_seed(mixed_seed(self.seed, self.epoch, self.position, self.rank))
        return iter(DataLoader(_RecordsAsIndices(), batch_sampler=records, num_workers=self.num_workers,
                               collate_fn=_PositionedCollate(self.collate, self.seed), generator=generator))

    def _next_micro_batch(self) -> dict | None:
        while True:
            if self._batches is None:
                self._batches = self._open_epoch()
            try:
                out = next(self._batches)
            except StopIteration:
                if self.position == 0:
                    raise ValueError(f"the training stream gives this process no full batch of {self.per_process} "
                                     "pairs in a whole epoch; use fewer processes or more data") from None
                self._batches, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            self.position = out.next_position
            return out.batch

    def next_step(self) -> list[dict | None]:
        """The ``accum`` micro-batches of the next optimizer step."""
        return [self._next_micro_batch() for _ in range(self.accum)]

    def state(self) -> dict:
        """Where this process is in its stream (pass back as ``state=`` to resume there)."""
        return {"epoch": self.epoch, "position": self.position}
