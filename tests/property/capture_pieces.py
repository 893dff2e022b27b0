"""The snapshot-capture rule both table state machines share: a capture begun at any step, read out a
piece at a time with changes in between, must yield exactly the records the table held when it began
(actors/capture_walk.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule


class CapturePieces:
    """Mix into a RuleBasedStateMachine whose `table` has begin_capture/end_capture and whose records
    have an `id`; it sets `self.capture = None` in its __init__ and names its records in `_records`."""

    table: Any
    capture: tuple[Any, dict[Any, Any], list[Any]] | None

    def _records(self) -> Iterable[Any]:
        raise NotImplementedError

    @rule(limit=st.integers(1, 4))
    def capture_piece(self, limit: int) -> None:
        """A snapshot capture: begun here if none runs, else its next piece; changes come in between."""
        if self.capture is None:
            walk = self.table.begin_capture()
            self.capture = (walk, {record.id: record for record in self._records()}, [])
            assert walk.count == len(self.table)
            return
        self._capture_piece(limit)

    def _capture_piece(self, limit: int) -> bool:
        """The next piece; False (and the whole capture checked) once the walk is done."""
        assert self.capture is not None
        walk, expected, got = self.capture
        piece = walk.next(limit)
        if piece is None:
            self.table.end_capture(walk)
            self.capture = None
            assert sorted(got, key=lambda record: record.id) == sorted(expected.values(), key=lambda record: record.id)
            return False
        got += piece
        return True
