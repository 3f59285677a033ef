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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
    """Runs a collator with torch's RNG seeded from (seed, epoch, first pair) and restored afterwards."""

    def __init__(self, collate: Callable[[list[dict]], dict | None], seed: int):
        self.collate, self.seed = collate, seed

    def __call__(self, records: list[dict]) -> dict | None:
        epoch, first = records[0]["key"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mixed_seed(self.seed, epoch, first))
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
