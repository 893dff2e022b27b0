"""Shared subscriptions (MQTT 5 §4.8.2; mosquitto 2.x also grants them to 3.1.1 clients): with
`mqtt_shared_group`, every instance subscribes to `$share/<group>/<request topic>`, so the broker hands
each request to one member of the group instead of to every instance. Pure. (The group name's rule is
transports/config/rules.py's `share_name`.)

A request a member received and had not answered when it died is not given to another member by
mosquitto (a clean session's in-flight QoS 1 message goes with it): its requester times out and retries
(README, "Running several instances").
"""

from __future__ import annotations


def shared_filter(topic: str, group: str | None) -> str:
    """The filter to subscribe to for `topic`: itself, or its `$share/<group>/` form."""
    return topic if group is None else f"$share/{group}/{topic}"
