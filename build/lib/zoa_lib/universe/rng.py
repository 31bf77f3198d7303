"""Deterministic random streams.

Every random draw comes from a :class:`numpy.random.Generator` seeded from the
profile seed, a stream name and indices (DESIGN.md): the same profile gives the same
bytes, whatever the order or the worker in which samples are made.
"""
from __future__ import annotations

import zlib

import numpy as np

#: Named streams; the CRC of the name keys the SeedSequence so streams never collide.
STREAMS = ("initial_conditions", "observers", "survey", "training", "local_universe", "evaluation")


def generator(seed: int, stream: str, *indices: int) -> np.random.Generator:
    """A Generator for (profile seed, stream, indices...), e.g. ``generator(p.seed, "survey", sample)``."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r} (known: {', '.join(STREAMS)})")
    key = [int(seed), zlib.crc32(stream.encode())] + [int(i) for i in indices]
    return np.random.default_rng(np.random.SeedSequence(key))
