"""Fixtures shared by every test directory."""

from tests.support.postgres import postgres  # noqa: F401 (a PostgreSQL server of our own)
from tests.support.redis import redis_url  # noqa: F401 (a fixture: a redis-server of our own)
from tests.support.turn import coturn, coturn_secret  # noqa: F401 (coturn of our own)
