"""Topological order: Kahn's algorithm, deterministic, with cycles reported by name.

>>> toposort({"Loss": ["L2"], "L2": ["L1"], "L1": []})
['L1', 'L2', 'Loss']
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence

from .errors import CycleError


def toposort(deps: Mapping[Hashable, Sequence[Hashable]], label=str) -> list:
    """Order the keys of ``deps`` so that each comes after everything it depends on.

    ``deps[k]`` lists what ``k`` depends on; entries that are not keys are ignored (they are
    inputs). Ties are broken by the order of ``deps``, so the result is deterministic. A cycle
    raises ``CycleError`` naming the keys on it (through ``label``).

    >>> toposort({"b": ["a"], "a": []})
    ['a', 'b']
    >>> toposort({"a": ["b"], "b": ["a"]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.CycleError: the equations form a cycle: a -> b -> a; ...
    """
    rank = {key: i for i, key in enumerate(deps)}
    waiting = {key: {d for d in deps[key] if d in rank} for key in deps}
    dependents: dict[Hashable, list] = {key: [] for key in deps}
    for key, ds in waiting.items():
        for d in ds:
            dependents[d].append(key)
    ready = [rank[k] for k, ds in waiting.items() if not ds]  # a heap of ranks
    heapq.heapify(ready)
    keys = list(deps)
    order = []
    while ready:
        key = keys[heapq.heappop(ready)]
        order.append(key)
        for user in dependents[key]:
            waiting[user].discard(key)
            if not waiting[user]:
                heapq.heappush(ready, rank[user])
    if len(order) < len(deps):
        raise CycleError([label(k) for k in _find_cycle(waiting, rank)])
    return order


def _find_cycle(waiting: Mapping[Hashable, set], rank: Mapping[Hashable, int]) -> list:
    """One cycle among the keys Kahn's algorithm could not place."""
    stuck = {k for k, ds in waiting.items() if ds}
    key = min(stuck, key=rank.__getitem__)
    seen: dict[Hashable, int] = {}
    path: list = []
    while key not in seen:
        seen[key] = len(path)
        path.append(key)
        key = min((d for d in waiting[key] if d in stuck), key=rank.__getitem__)
    return path[seen[key] :]
