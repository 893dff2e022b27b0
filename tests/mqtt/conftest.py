"""Real-broker fixtures for the MQTT tests (see broker.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.broker import MosquittoBroker, MosquittoNotFoundError


def _launch(workdir: Path) -> MosquittoBroker:
    try:
        broker = MosquittoBroker(workdir)
    except MosquittoNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    broker.start()
    return broker


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One broker for the whole run; tests must not stop it and should use their own topics."""
    broker = _launch(tmp_path_factory.mktemp("mosquitto-shared"))
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker of the test's own: stop()/start() it freely (same port), it is killed at teardown."""
    own = _launch(tmp_path / "mosquitto")
    try:
        yield own
    finally:
        own.kill()
