"""The pair presentation scheme of Algorithm 1.

Every pair receives the same number of presentations per scale (each
presentation advances its alignment by a few grid iterations). To show the
feature networks pairs at *different* alignment stages within one mini-batch,
the presentations are split into ``subintervals`` rounds; inside a round the
order of the pairs is random, and mini-batches are drawn from that order, so a
batch mixes pairs that are early and late in their round (and, across round
boundaries, in different rounds).
"""

from __future__ import annotations

import numpy as np

__all__ = ["presentation_scheme"]


def presentation_scheme(
    pairs: int,
    presentations: int,
    subintervals: int,
    batch: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Mini-batches of pair indices covering ``presentations`` per pair.

    Parameters
    ----------
    pairs : int
        Number of training pairs.
    presentations : int
        Presentations of each pair at this scale.
    subintervals : int
        Rounds ``p`` the presentations are split into (``presentations`` is
        rounded up to a multiple of it).
    batch : int
        Pairs per mini-batch (a batch never holds one pair twice; the last
        batch of the scheme may be smaller).
    rng : numpy.random.Generator
        Source of every random choice.

    Returns
    -------
    list of list of int
        The batches in order; pair ``i`` appears ``ceil(presentations / p) * p`` times.
    """
    per_round = -(-presentations // subintervals)
    order: list[int] = []
    for _ in range(subintervals):
        round_order = np.repeat(np.arange(pairs), per_round)
        rng.shuffle(round_order)
        order.extend(int(i) for i in round_order)
    batches: list[list[int]] = []
    pending = order
    while pending:
        current: list[int] = []
        rest: list[int] = []
        for index in pending:
            if len(current) < batch and index not in current:
                current.append(index)
            else:
                rest.append(index)
        batches.append(current)
        pending = rest
    return batches
