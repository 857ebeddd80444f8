"""Fixtures shared by every test directory."""

from tests.support.redis import redis_url  # noqa: F401 (a fixture: a redis-server of our own)
