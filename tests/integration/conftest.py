"""Fixtures of the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from realorders.config import Config


@pytest.fixture(params=["sqlite", "kafka"])
def backend_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """A store of the test's own, once on SQLite and once on the real Kafka + Redis."""
    if request.param == "sqlite":
        return Config(db=tmp_path / "shop.db")
    found: Config = request.getfixturevalue("kafka_store_config")
    return found
