"""TakeoverWatch and StuckPublishWatch (transports/mqtt/watch.py): pure, against simple models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.mqtt.watch import StuckPublishWatch, TakeoverWarning, TakeoverWatch


def test_mqtt5_takeover_warns_at_once_then_once_a_minute_with_a_count() -> None:
    watch = TakeoverWatch(early=5, in_a_row=3, interval=60)
    assert watch.link_lost(now=100, lifetime=30, taken_over=True) == TakeoverWarning(True, 1, 0)
    assert watch.link_lost(now=101, lifetime=0.4, taken_over=True) is None
    assert watch.link_lost(now=102, lifetime=0.3, taken_over=False) is None  # another reason: not counted
    assert watch.link_lost(now=159, lifetime=0.4, taken_over=True) is None
    assert watch.link_lost(now=161, lifetime=0.4, taken_over=True) == TakeoverWarning(True, 3, 4)
    assert watch.taken_over == 4


def test_mqtt311_takeover_is_inferred_from_early_losses_in_a_row() -> None:
    watch = TakeoverWatch(early=5, in_a_row=3, interval=60)
    assert watch.link_lost(now=10, lifetime=0.5, taken_over=None) is None
    assert watch.link_lost(now=11, lifetime=0.5, taken_over=None) is None
    assert watch.link_lost(now=12, lifetime=7.0, taken_over=None) is None  # a long one breaks the streak
    assert watch.link_lost(now=13, lifetime=0.5, taken_over=None) is None
    assert watch.link_lost(now=14, lifetime=0.5, taken_over=None) is None
    assert watch.taken_over == 0
    assert watch.link_lost(now=15, lifetime=0.5, taken_over=None) == TakeoverWarning(False, 1, 3)
    assert watch.link_lost(now=16, lifetime=0.5, taken_over=None) is None  # rate-limited, still counted
    assert watch.taken_over == 2


@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from([None, True, False])), max_size=60))
def test_takeover_count_matches_a_model(events: list[tuple[float, bool | None]]) -> None:
    watch = TakeoverWatch(early=5, in_a_row=3, interval=60)
    expected = streak = warnings = 0
    for n, (lifetime, said) in enumerate(events):
        streak = streak + 1 if lifetime < 5 else 0
        taken = said if said is not None else streak >= 3
        expected += taken
        warning = watch.link_lost(now=float(n), lifetime=lifetime, taken_over=said)
        if warning is not None:
            assert taken and warning.stated == (said is not None)
            warnings += 1
    assert watch.taken_over == expected
    assert warnings == min(expected, 1)  # every event within one minute: one warning at most


def test_stuck_publish_is_given_up_after_the_limit_in_a_row() -> None:
    a, b = object(), object()
    watch: StuckPublishWatch[object] = StuckPublishWatch(limit=2)
    assert watch.link_lost(a) is None
    assert watch.link_lost(a) is a
    assert watch.link_lost(a) is None  # counting starts again (it is gone from paho's queue by then)
    assert watch.link_lost(b) is None
    assert watch.link_lost(a) is None  # not in a row
    assert watch.link_lost(None) is None  # nothing in flight: forgets
    assert watch.link_lost(a) is None
    assert watch.link_lost(a) is a


def test_stuck_publish_limit_one_gives_up_at_the_first_loss() -> None:
    a = object()
    assert StuckPublishWatch[object](limit=1).link_lost(a) is a
    with pytest.raises(ValueError, match="at least 1"):
        StuckPublishWatch[object](limit=0)


@given(st.lists(st.sampled_from([None, 0, 1, 2]), max_size=40), st.integers(1, 4))
def test_stuck_publish_matches_a_model(losses: list[int | None], limit: int) -> None:
    messages = [object(), object(), object()]
    watch: StuckPublishWatch[object] = StuckPublishWatch(limit)
    previous, strikes = None, 0
    for loss in losses:
        message = None if loss is None else messages[loss]
        strikes = 0 if message is None else (strikes + 1 if message is previous else 1)
        given_up = watch.link_lost(message)
        if message is not None and strikes >= limit:
            assert given_up is message
            previous, strikes = None, 0
        else:
            assert given_up is None
            previous = message
