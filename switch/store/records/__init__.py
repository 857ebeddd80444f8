"""Records (issue #9): CDRs, their legs, queue and agent events, wrap-up forms.

Written through a local outbox (nothing lost to a crash or a database
outage, nothing written twice) into SQLite or PostgreSQL; see service.py.
"""

from .errors import RecordsError, Unavailable
from .outbox import Outbox, Record
from .schema import SCHEMA_VERSION
from .service import Backend, Records, open_backend
from .sql import BadRecord

__all__ = [
    "SCHEMA_VERSION",
    "Backend",
    "BadRecord",
    "Outbox",
    "Record",
    "Records",
    "RecordsError",
    "Unavailable",
    "open_backend",
]
