"""Size groups: runs of one source whose model sizes are nearly equal (the one definition).

A size group is the unit of the fits' discrepancy term (:mod:`surrogate.bayes`), of the
validation splits and of the (size, tokens) cells in which shapes are ranked
(:mod:`surrogate.validation`), and of joint predictions (:meth:`LawPosterior.joint_draws`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["size_groups", "SIZE_GROUP_REL", "SIZE_GROUP_MAX_SPAN"]

#: A size more than this fraction above the previous distinct size starts a new size group.
SIZE_GROUP_REL: float = 0.15
#: ... and so does a size more than this factor above the group's smallest (no endless chains
#: through densely sampled sizes).
SIZE_GROUP_MAX_SPAN: float = 1.5


def size_groups(
    sizes: np.ndarray,
    keys: np.ndarray | None = None,
    rel: float = SIZE_GROUP_REL,
    max_span: float = SIZE_GROUP_MAX_SPAN,
) -> np.ndarray:
    """Group index ``(n,)`` of (key, model size) groups: the one definition of a size group
    (the fits' discrepancy unit, the validation splits and cells).

    Within each key (source), the distinct sizes are walked in ascending order; a new group
    starts at a size more than ``rel`` above the previous distinct size (a gap between size
    clusters) or more than ``max_span`` times the group's smallest. So the variants of one
    nominal size stay together (morph's four 1B shapes, 1.16-1.36B non-embedding; gemstones'
    337-440M) while densely sampled ranges are cut into chunks. Groups are numbered in order of
    (key, size). Callers pass non-embedding parameters (the laws' ``N``) unless they say why.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    keys = np.zeros(sizes.size, np.int64) if keys is None else np.asarray(keys)
    out = np.empty(sizes.size, np.int64)
    next_id = 0
    for key in sorted(set(keys.tolist()), key=str):
        m = keys == key
        gid: dict[float, int] = {}
        n_groups = 0
        first: float | None = None
        prev: float | None = None
        for v in np.unique(sizes[m]):
            if first is None or prev is None or v > prev * (1.0 + rel) or v > first * max_span:
                n_groups, first = n_groups + 1, v
            gid[v] = next_id + n_groups - 1
            prev = v
        out[m] = [gid[v] for v in sizes[m]]
        next_id += n_groups
    return out
