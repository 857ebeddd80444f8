"""The ACD's records in Redis, shared by the nodes of a cluster (an AcdStore, see acd.py).

Why a replica. The ACD engine is synchronous and reads many records per
decision (every free agent of a queue, the heads of the caller groups):
a Redis round trip per read would cost more than the decision. So each node
keeps every record it may read in local dicts, as MemoryStore does; `get` and
`all` never leave the process. Only `commit` talks to Redis.

Commit: one Lua script, one round trip. It compares every write's expected
version with the stored one (HGET of the version hash; absent = 0) and
either writes nothing and returns the current value of every record that
moved (Conflict: the replica takes them in, and the engine's index with it,
before the Conflict is raised, so the next decision starts from fresh
records), or writes them all, bumps the scope's commit counter (`seq`) and
PUBLISHes the change, numbered. Redis runs one script at a time, so no other
node's write falls between the checks and the sets: two nodes deciding from
the same snapshot cannot both reserve one agent or one caller.

Sync, not async. `commit` uses a blocking connection: the engine must know
the outcome before it goes on (a reservation it believes made must be
made), and an await inside the engine would let other inputs interleave
with a half-applied decision. The event loop is held for the round trip
(about 60 us on an idle loopback; bench/acd.py measures decisions). The
connection is used directly with a packer of our own: redis-py's command
path cost more CPU than the round trip (measured). Its timeouts are short
(TIMEOUT), and after a failure commits fail at once for RETRY_AFTER seconds
(StoreUnavailable, a Conflict: a decision is dropped and the caller keeps
waiting; an engine timer runs again later) rather than holding the loop
once per decision.

Freshness. Each node has a channel; a commit is published to every other
node's (the nodes are a set in Redis, joined when a store opens), so a node
never spends time on its own changes. A thread subscribes to this node's
channel and queues the messages; `sync()` (the engine calls it at the start
of every input) applies them in the owner's thread, in commit order, and
tells the listener (the engine: its index, the routing of agents another
node freed, the timers of other nodes' reservations) what changed. `wake`,
if given, is called from that thread when a message arrives, so that an
idle node takes it in (and routes) without waiting for its next input. A
record this node committed or refreshed at a later seq than a queued
message is not overwritten by it. After a (re)subscription, or a gap in the
numbers (a message lost), the replica is reloaded whole (HGETALL) and the
differences told to the listener.

Expiry. Every reservation carries its `expires_at`; the node that made it
ends it then. If that node died, the others free its agents ORPHAN_GRACE
later (apps/acd/state.py): a Redis TTL could not, since the agent's record,
not only the reservation, must change.

Key layout, `P` the prefix and `S` the scope (one tenant):

    P acd:S:ver      hash  field -> version (the compare-and-set reads this)
    P acd:S:val      hash  field -> "<seq> <record JSON>"
    P acd:S:seq      int   commits so far
    P acd:S:nodes    set   the nodes that opened the store (a dead one stays:
                           publishing to nobody costs little)
    P acd:S:changes:<node>  channel: "<seq> <node that committed>", then a
                     line "field<TAB>JSON" per write (JSON empty: deleted)

Fields are "<kind>:<key>". Agents, reservations, queue memory and sticky
records are shared by every node. Waiting callers are not: a caller is held
by the node that took its SIP call and only that node can ring agents for
it, so entries are "entry:<node>/<caller>" and each node's replica holds its
own (each node decides for its own callers, reserving shared agents
atomically). Node names must therefore be unique; a node opening the store
drops the entries of its previous run (those calls ended with it).
Records are JSON (the codec is given: apps/acd/codec.py).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from switch.store.acd import KINDS, Conflict, Kind, Listener, Write
from switch.store.redis_state import DEFAULT_PREFIX

__all__ = ["RETRY_AFTER", "TIMEOUT", "RedisAcdStore", "StoreUnavailable"]

log = logging.getLogger(__name__)

# Seconds a commit may wait for Redis (connect, or the reply). A loaded
# machine was seen to stall a reply past half a second; longer than this is
# an outage, and then the loop is held at most a third of the time:
TIMEOUT = 1.0
RETRY_AFTER = 2.0  # after a failed commit, commits fail at once this long
_POLL = 0.2  # the subscriber thread looks at `closed` this often
_NEWER_MAX = 1024  # entries of _newer before a commit prunes those taken in
_RESYNC = object()  # queued by the subscriber: reload the replica whole

# KEYS: 1 version hash, 2 value hash, 3 seq, 4 node set. ARGV: 1 channel prefix,
# 2 node, then 4 per write: field, expected version ('' any), new version,
# JSON ('' delete). The change is published to every other node's channel.
_COMMIT = """
local ver, val = KEYS[1], KEYS[2]
local moved = {}
for i = 3, #ARGV, 4 do
  if ARGV[i + 1] ~= '' then
    local found = redis.call('HGET', ver, ARGV[i]) or '0'
    if found ~= ARGV[i + 1] then moved[#moved + 1] = ARGV[i] end
  end
end
if #moved > 0 then
  local out = {redis.call('GET', KEYS[3]) or '0'}
  for _, f in ipairs(moved) do
    out[#out + 1] = f
    out[#out + 1] = redis.call('HGET', ver, f) or '0'
    out[#out + 1] = redis.call('HGET', val, f) or ''
  end
  return out
end
local seq = redis.call('INCR', KEYS[3])
local msg = {seq .. ' ' .. ARGV[2]}
for i = 3, #ARGV, 4 do
  local f, json = ARGV[i], ARGV[i + 3]
  if json == '' then
    redis.call('HDEL', ver, f)
    redis.call('HDEL', val, f)
  else
    redis.call('HSET', ver, f, ARGV[i + 2])
    redis.call('HSET', val, f, seq .. ' ' .. json)
  end
  msg[#msg + 1] = f .. '\\t' .. json
end
local text = table.concat(msg, '\\n')
for _, node in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if node ~= ARGV[2] then redis.call('PUBLISH', ARGV[1] .. node, text) end
end
return seq
"""


class StoreUnavailable(Conflict):
    """Redis did not answer a commit: nothing is known to be written, the decision is dropped."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(
            self,
            f"the ACD's Redis did not answer ({reason}): the change is not made; "
            "it is tried again at the next input",
        )
        self.kind, self.key, self.expected, self.found = "", "", 0, 0


class RedisAcdStore:
    """An AcdStore in Redis with a local replica; see the module's docstring.

    `encode(kind, record) -> str` and `decode(kind, text) -> record` turn
    records into JSON and back (switch.apps.acd.codec). Call `close()`.
    """

    def __init__(
        self,
        url: str,
        scope: str,
        node: str,
        *,
        encode: Callable[[str, Any], str],
        decode: Callable[[str, str], Any],
        prefix: str = DEFAULT_PREFIX,
        wake: Callable[[], None] | None = None,
    ) -> None:
        if not node or "/" in node:
            raise ValueError(f"node {node!r}: a node name is required, without '/'")
        base = f"{prefix}acd:{scope}:"
        self._keys = [f"{base}ver", f"{base}val", f"{base}seq", f"{base}nodes"]
        self._channels = f"{base}changes:"
        self._channel = f"{base}changes:{node}"
        self.node = node
        self._entry_prefix = f"entry:{node}/"
        self._encode, self._decode = encode, decode
        self._wake = wake
        self._data: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._listeners: list[Listener] = []
        self._newer: dict[tuple[str, str], int] = {}  # (kind, key) -> seq applied here
        self._hwm = 0  # every commit up to this seq is in the replica
        self._own: set[int] = set()  # seqs of this node's commits above _hwm
        self._inbox: collections.deque[Any] = collections.deque()
        self._poked = False
        self._down_until = 0.0
        self.commits = 0
        self.conflicts = 0
        self.reloads = 0
        self._client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        # The commit's own connection, used directly: redis-py's per-command
        # path (pool, retries, metrics) cost more than the round trip (measured).
        self._sha = self._client.script_load(_COMMIT)
        self._conn = self._client.connection_pool.get_connection()
        self._client.sadd(self._keys[3], node)  # other nodes publish to this one from now
        self._sub_client = redis.Redis.from_url(url, decode_responses=True)
        self._closed = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(
            target=self._subscriber, name=f"acd-redis {scope}", daemon=True
        )
        self._thread.start()
        if not self._subscribed.wait(5.0):
            self.close()
            raise ConnectionError(f"the ACD store cannot subscribe to {self._channel} in Redis")
        self.sync()  # the first reload, queued by the subscription
        self._drop_own_entries()

    # ------------------------------------------------------------------
    # Reads: the replica

    def get(self, kind: Kind, key: str) -> Any | None:
        return self._data[kind].get(key)

    def all(self, kind: Kind) -> Iterable[Any]:
        return list(self._data[kind].values())

    def count(self, kind: Kind) -> int:
        return len(self._data[kind])

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def pending(self) -> bool:
        return bool(self._inbox)

    # ------------------------------------------------------------------
    # The commit

    def commit(self, writes: Sequence[Write]) -> None:
        args = [self._channels, self.node]
        for write in writes:
            value = write.value
            if value is None:
                args += [self._field(write.kind, write.key), _text(write.expected), "", ""]
                continue
            if write.expected is not None and value.version != write.expected + 1:
                raise ValueError(
                    f"{write.kind} {write.key!r}: the new record's version must be "
                    f"{write.expected + 1}, not {value.version}"
                )
            args += [
                self._field(write.kind, write.key),
                _text(write.expected),
                str(value.version),
                self._encode(write.kind, value),
            ]
        if time.monotonic() < self._down_until:
            raise StoreUnavailable(f"it failed less than {RETRY_AFTER:g} s ago")
        try:
            result = self._evalsha(args)
        except (RedisError, OSError) as exc:
            # The script may have run before the reply was lost: if so, its
            # message brings the change back here as another node's (the
            # engine's orphan timer frees a reservation it does not know).
            self._down_until = time.monotonic() + RETRY_AFTER
            log.warning("ACD store: Redis did not answer a commit: %s", exc)
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None
        if isinstance(result, list):
            self.conflicts += 1
            raise self._refresh(writes, result)
        seq = int(result)
        self._own.add(seq)
        self._skip_own()
        # Caught up to this commit (the usual case on one node): no older
        # message can come, so nothing needs guarding against one.
        guard = self._hwm < seq
        newer = self._newer
        for write in writes:
            table = self._data[write.kind]
            if write.value is None:
                table.pop(write.key, None)
            else:
                table[write.key] = write.value
            if guard:
                newer[(write.kind, write.key)] = seq
        if len(newer) > _NEWER_MAX:
            self._prune()
        self.commits += 1

    def _evalsha(self, args: list[str]) -> Any:
        conn = self._conn
        keys = self._keys
        try:
            conn.send_packed_command([_pack(["EVALSHA", self._sha, str(len(keys)), *keys, *args])])
            return conn.read_response()
        except NoScriptError:  # Redis restarted, or SCRIPT FLUSH
            self._sha = self._client.script_load(_COMMIT)
            conn.send_packed_command([_pack(["EVALSHA", self._sha, str(len(keys)), *keys, *args])])
            return conn.read_response()
        except ResponseError:
            raise  # an answer: the connection is fine
        except (RedisError, OSError):
            conn.disconnect()  # a reply may still come: never read it as the next one's
            raise

    def _refresh(self, writes: Sequence[Write], result: list) -> Conflict:
        """Take in the current records the failed commit found moved; the first one's Conflict."""
        current = int(result[0])
        found: dict[str, int] = {}
        for i in range(1, len(result), 3):
            field, version, stored = result[i], int(result[i + 1]), result[i + 2]
            found[field] = version
            parsed = self._parse(field)
            if parsed is None:
                continue
            kind, key = parsed
            if stored:
                seq_text, _, text = stored.partition(" ")
                self._put(kind, key, self._decode(kind, text), int(seq_text))
            else:
                self._put(kind, key, None, current)
        for write in writes:
            field = self._field(write.kind, write.key)
            if field in found:
                return Conflict(write.kind, write.key, write.expected or 0, found[field])
        raise AssertionError("a conflict names a field of the commit")  # the script's contract

    # ------------------------------------------------------------------
    # Other nodes' changes

    def sync(self) -> None:
        inbox = self._inbox
        if not inbox:
            return
        self._poked = False  # before draining: a message queued from now on wakes again
        while inbox:
            item = inbox.popleft()
            if item is _RESYNC:
                self._reload()
                continue
            head, _, body = item.partition("\n")
            seq = int(head.partition(" ")[0])
            self._skip_own()
            if seq <= self._hwm:
                continue  # in the reload already
            if seq != self._hwm + 1:
                log.warning("ACD store: commits %d..%d were not received; reloading",
                            self._hwm + 1, seq - 1)  # fmt: skip
                self._reload()
                continue
            self._hwm = seq
            for line in body.split("\n") if body else ():
                field, _, text = line.partition("\t")
                parsed = self._parse(field)
                if parsed is None:
                    continue
                kind, key = parsed
                if self._newer.get((kind, key), 0) >= seq:
                    continue  # this node holds a later write of it
                self._put(kind, key, self._decode(kind, text) if text else None, seq)
        self._skip_own()
        if self._newer:
            self._prune()

    def _prune(self) -> None:
        hwm = self._hwm
        self._newer = {k: s for k, s in self._newer.items() if s > hwm}

    def _skip_own(self) -> None:
        """Move past this node's own commits: their messages are not sent to it."""
        own = self._own
        while self._hwm + 1 in own:
            self._hwm += 1
            own.discard(self._hwm)

    def catch_up(self, timeout: float = 5.0) -> None:
        """Wait until every commit made so far (by any node) is here, and take it in."""
        target = int(self._client.get(self._keys[2]) or 0)
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            if self._hwm >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ACD store is at commit {self._hwm}, not {target}")
            time.sleep(0.002)

    def _put(self, kind: str, key: str, record: Any, seq: int) -> None:
        table = self._data[kind]
        old = table.get(key)
        if record is None:
            table.pop(key, None)
        else:
            table[key] = record
        self._newer[(kind, key)] = max(seq, self._newer.get((kind, key), 0))
        if old is not record and (old is None or record is None or old.version != record.version):
            for listener in self._listeners:
                listener(kind, old, record)

    def _reload(self) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._keys[1])
            pipe.get(self._keys[2])
            values, seq = pipe.execute()
        fresh: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for field, stored in values.items():
            parsed = self._parse(field)
            if parsed is not None:
                kind, key = parsed
                fresh[kind][key] = self._decode(kind, stored.partition(" ")[2])
        old_data, self._data = self._data, fresh
        self._hwm = int(seq or 0)
        self._own = {s for s in self._own if s > self._hwm}
        self._newer.clear()
        self.reloads += 1
        if self._listeners:
            for kind in KINDS:
                before, after = old_data[kind], fresh[kind]
                for key in before.keys() | after.keys():
                    old, new = before.get(key), after.get(key)
                    if old is None or new is None or old.version != new.version:
                        for listener in self._listeners:
                            listener(kind, old, new)

    def _drop_own_entries(self) -> None:
        """A store opened by a node starts without callers: those a previous run of
        this node held went with it (their calls are gone), and a caller id of
        the new run must not find an old entry in its place."""
        old = self._data["entry"]
        if not old:
            return
        fields = [self._field("entry", key) for key in old]
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys[0], *fields)
            pipe.hdel(self._keys[1], *fields)
            pipe.execute()
        log.info("ACD store: %d callers of a previous run of node %s dropped",
                 len(old), self.node)  # fmt: skip
        self._data["entry"] = {}

    def _field(self, kind: str, key: str) -> str:
        if kind == "entry":
            return f"{self._entry_prefix}{key}"
        return f"{kind}:{key}"

    def _parse(self, field: str) -> tuple[str, str] | None:
        """(kind, key) of a field this node's replica holds; None: another node's caller."""
        kind, _, key = field.partition(":")
        if kind == "entry":
            if not field.startswith(self._entry_prefix):
                return None
            return kind, field[len(self._entry_prefix) :]
        return (kind, key) if kind in self._data else None

    # ------------------------------------------------------------------
    # The subscriber thread

    def _subscriber(self) -> None:
        while not self._closed.is_set():
            pubsub = self._sub_client.pubsub()
            try:
                pubsub.subscribe(self._channel)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=_POLL)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Subscribed: what was missed before is read whole.
                        self._queue(_RESYNC)
                        self._subscribed.set()
                    elif message["type"] == "message":
                        self._queue(message["data"])
            except (RedisError, OSError) as exc:
                if not self._closed.is_set():
                    log.warning("ACD store: Redis subscription lost (%s); resubscribing", exc)
                    self._closed.wait(RETRY_AFTER)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    pubsub.close()

    def _queue(self, item: Any) -> None:
        self._inbox.append(item)
        if not self._poked and self._wake is not None:
            self._poked = True
            try:
                self._wake()
            except Exception:  # a closed event loop at shutdown, say: sync() still drains
                log.debug("ACD store: wake failed", exc_info=True)

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2 * _POLL + 1.0)
        self._conn.disconnect()
        self._client.close()
        self._sub_client.close()


def _pack(args: list[str]) -> bytes:
    """A command in RESP, written here: redis-py's packer spent more time on a commit's
    JSON arguments than Redis spends running the script (measured)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _text(expected: int | None) -> str:
    return "" if expected is None else str(expected)
