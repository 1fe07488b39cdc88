"""Fixtures of the event-core integration tests: a config on the module's embedded
MongoDB with this test's unique exchange and queue names, and its store (with the
`effects` collection the test effects write to created up front)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mesh.config import MeshConfig
from mesh.store import Store
from tests.support.events import ensure_collection, event_config
from tests.support.processes import EmbeddedMongo


@pytest.fixture
def config(mongo: EmbeddedMongo, isolation: dict[str, str]) -> MeshConfig:
    return event_config(mongo.url, isolation)


@pytest.fixture
def store(config: MeshConfig) -> Iterator[Store]:
    store = Store(config.mongo_url, config.database)
    ensure_collection(store, "effects")
    yield store
    store.close()
