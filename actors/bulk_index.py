"""Building the tables' indexes from a whole snapshot in one go, instead of one record at a time.

At 10^6 records, start-up time is almost all index building. Three things make the bulk path cheap:
one stable sort per index on a plain key (ties stay in the id order of the input, which is exactly
the order of the `(key, id)` tuples the index holds, without comparing tuples); `SortedList`s
assembled from already-sorted values without sorting them again; and equality indexes built with
as little Python per record as possible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sortedcontainers import SortedList

_K = TypeVar("_K")
_V = TypeVar("_V")

_first = itemgetter(0)


def presorted(values: list[Any]) -> SortedList:
    """A SortedList of `values`, which must already be in ascending order (not checked: O(1) per item).

    Mirrors what `SortedList.update` does to an empty list after its sort (sortedcontainers 2.x keeps
    its values as sublists of at most `_load` items plus each sublist's maximum); the tests check the
    result with `SortedList._check()`.
    """
    result = SortedList()
    load = result._load
    result._lists.extend(values[pos : pos + load] for pos in range(0, len(values), load))
    result._maxes.extend(sublist[-1] for sublist in result._lists)
    result._len = len(values)
    return result


def keyed_entries(in_id_order: Sequence[Any], entry: Callable[[Any], tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """`entry(record)` = (key, id) for every record, in (key, id) order, given the records in id order.

    A stable sort on the key alone gives the same order as sorting the tuples, much faster: keys are
    compared by their own type's fast path, ids never. Entries are made in id order (memory order
    of the records, kinder to the cache) and then moved, not the records.
    """
    entries = list(map(entry, in_id_order))
    entries.sort(key=_first)
    return entries


def grouped_unsorted(keys: Iterable[_K], ids: Iterable[_V]) -> dict[_K, set[_V]]:
    """key -> set of ids."""
    index: dict[_K, set[_V]] = {}
    for key, value in zip(keys, ids, strict=True):
        found = index.get(key)
        if found is None:
            index[key] = {value}
        else:
            found.add(value)
    return index
