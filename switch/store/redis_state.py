"""Live state in Redis (`redis.asyncio`), shared by every node of a cluster.

Key layout (`P` is the prefix, "switch:" by default):

    P loc:<aor>              hash   field = binding key, value = binding JSON;
                                    TTL = the AOR's latest expiry, so an AOR
                                    nobody refreshes vanishes by itself
    P loc-aors:<tenant>      zset   member = AOR, score = its latest expiry
    P loc-all                zset   member = "<aor>\\n<key>", score = expiry
                                    (count() without scanning)
    P flow:<node>:<conn_id>  set    members "<aor>\\n<key>" registered over that
                                    connection; TTL = latest expiry
    P ban:<ip>               string ban end (epoch seconds); TTL = the ban
    P bans                   zset   member = ip, score = ban end (listing)
    P authfail:<ip>          zset   failed authentications in the window
    P loc-changes            pub/sub channel: {"aor", "cause", "origin"} after a
                                    change of an AOR some subscriber watches (an
                                    agent's): the other nodes read it back and tell
                                    their own subscribers (switch.store.location_events)

Each binding's expiry lives in its JSON value and reads filter on it: Redis
7.0 has no per-field TTL. Writes prune expired fields. TTLs are set relative to
the caller's `now` (expiry - now), so nodes need not share Redis's clock.

Every hot operation is one round trip: a Lua script for the writes (atomic, so
concurrent REGISTERs from several nodes never lose a binding), HGETALL for
`get`. The scripts are given every key they touch, but those keys span hash
slots: they need one Redis (standalone or behind Sentinel), not Redis Cluster.
A change of an AOR a subscriber watches (an agent's, for the ACD) costs one
PUBLISH more, and a removal of one a read back; other AORs cost nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from switch.store.bans import (
    DEFAULT_BAN_TIME,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    check_params,
)
from switch.store.location import (
    Binding,
    Change,
    OutOfOrder,
    check_changes,
    sort_bindings,
    tenant_of,
)
from switch.store.location_events import LocationEvents

__all__ = ["DEFAULT_PREFIX", "RedisBanStore", "RedisLocationStore"]

DEFAULT_PREFIX = "switch:"

log = logging.getLogger(__name__)

# KEYS: 1 AOR hash, 2 tenant zset, 3 all-bindings zset, 4.. flow sets of the puts
# ARGV: 1 now, 2 aor, then 5 per change: op ("p"ut / "r"emove), key, value,
#       expires_at, index in KEYS of its flow set (0: none)
_APPLY = """
local now = tonumber(ARGV[1])
local aor = ARGV[2]
local call_id, cseq, max = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])  -- max: nil = none
local h, tenant, all = KEYS[1], KEYS[2], KEYS[3]
-- RFC 3261 10.3 step 7, before anything changes: the same client (Call-ID)
-- must not be older than the REGISTER that made a binding it touches.
local function too_old(value)
  if not value then return false end
  local b = cjson.decode(value)
  return b['expires_at'] > now and b['call_id'] == call_id and cseq <= b['cseq']
end
if call_id ~= '' then
  for i = 6, #ARGV, 5 do
    if ARGV[i + 1] == '*' then
      for _, value in ipairs(redis.call('HVALS', h)) do
        if too_old(value) then return redis.error_reply('OUT_OF_ORDER') end
      end
    elseif too_old(redis.call('HGET', h, ARGV[i + 1])) then
      return redis.error_reply('OUT_OF_ORDER')
    end
  end
end
local new = {}
for i = 6, #ARGV, 5 do
  local key = ARGV[i + 1]
  local member = aor .. '\\n' .. key
  if ARGV[i] == 'p' then
    new[key] = true
    redis.call('HSET', h, key, ARGV[i + 2])
    redis.call('ZADD', all, ARGV[i + 3], member)
    local fi = tonumber(ARGV[i + 4])
    if fi > 0 then
      local ms = math.ceil((tonumber(ARGV[i + 3]) - now) * 1000)
      redis.call('SADD', KEYS[fi], member)
      if ms > 0 and redis.call('PTTL', KEYS[fi]) < ms then
        redis.call('PEXPIRE', KEYS[fi], ms)
      end
    end
  elseif key == '*' then
    for _, k in ipairs(redis.call('HKEYS', h)) do
      redis.call('ZREM', all, aor .. '\\n' .. k)
    end
    redis.call('DEL', h)
  else
    redis.call('HDEL', h, key)
    redis.call('ZREM', all, member)
  end
end
local fields = redis.call('HGETALL', h)
local live, latest = {}, nil
for i = 1, #fields, 2 do
  local b = cjson.decode(fields[i + 1])
  if b['expires_at'] <= now then
    redis.call('HDEL', h, fields[i])
    redis.call('ZREM', all, aor .. '\\n' .. fields[i])
  else
    live[#live + 1] = {fields[i], fields[i + 1], b['expires_at'], b['registered_at']}
  end
end
-- Too many devices: the oldest make room, never one put just now.
if max and #live > max then
  local old = {}
  for _, e in ipairs(live) do
    if not new[e[1]] then old[#old + 1] = e end
  end
  table.sort(old, function(a, b) return a[4] < b[4] end)
  local drop = {}
  for j = 1, math.min(#live - max, #old) do
    drop[old[j][1]] = true
    redis.call('HDEL', h, old[j][1])
    redis.call('ZREM', all, aor .. '\\n' .. old[j][1])
  end
  local kept = {}
  for _, e in ipairs(live) do
    if not drop[e[1]] then kept[#kept + 1] = e end
  end
  live = kept
end
local values = {}
for _, e in ipairs(live) do
  values[#values + 1] = e[2]
  if latest == nil or e[3] > latest then latest = e[3] end
end
if latest == nil then
  redis.call('DEL', h)
  redis.call('ZREM', tenant, aor)
else
  redis.call('PEXPIRE', h, math.ceil((latest - now) * 1000))
  redis.call('ZADD', tenant, latest, aor)
end
-- Entries of AORs whose hash expired by TTL are never removed one by one.
redis.call('ZREMRANGEBYSCORE', all, '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', tenant, '-inf', ARGV[1])
return values
"""

# KEYS: 1 AOR hash, 2 tenant zset, 3 all-bindings zset. ARGV: aor, key
_REMOVE = """
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1] .. '\\n' .. ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
"""

# KEYS: 1 AOR hash, 2 tenant zset, 3 all-bindings zset. ARGV: aor
_REMOVE_ALL = """
for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
  redis.call('ZREM', KEYS[3], ARGV[1] .. '\\n' .. key)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
"""

# KEYS: 1 flow set, 2 all-bindings zset, then (AOR hash, tenant zset) per AOR.
# ARGV: 1 node, 2 conn_id, then per AOR: aor, n, n keys.
# A member whose binding has moved to another flow since is left alone.
_REMOVE_FLOW = """
local node, conn = ARGV[1], tonumber(ARGV[2])
local removed = {}
local k, a = 3, 3
while a <= #ARGV do
  local aor, n = ARGV[a], tonumber(ARGV[a + 1])
  local h, tenant = KEYS[k], KEYS[k + 1]
  for j = a + 2, a + 1 + n do
    local value = redis.call('HGET', h, ARGV[j])
    if value then
      local b = cjson.decode(value)
      if b['node'] == node and b['conn_id'] == conn then
        redis.call('HDEL', h, ARGV[j])
        redis.call('ZREM', KEYS[2], aor .. '\\n' .. ARGV[j])
        removed[#removed + 1] = value
      end
    end
  end
  if redis.call('EXISTS', h) == 0 then redis.call('ZREM', tenant, aor) end
  a, k = a + 2 + n, k + 2
end
redis.call('DEL', KEYS[1])
return removed
"""


def encode_binding(binding: Binding) -> str:
    # Written by hand rather than dataclasses.asdict, which deep-copies: this
    # runs for every REGISTER.
    return json.dumps(
        {
            "aor": binding.aor,
            "contact": binding.contact,
            "expires_at": binding.expires_at,
            "call_id": binding.call_id,
            "cseq": binding.cseq,
            "q": binding.q,
            "instance": binding.instance,
            "reg_id": binding.reg_id,
            "path": binding.path,
            "transport": binding.transport,
            "source": binding.source,
            "local": binding.local,
            "conn_id": binding.conn_id,
            "node": binding.node,
            "user_agent": binding.user_agent,
            "registered_at": binding.registered_at,
        },
        separators=(",", ":"),
    )


def decode_binding(text: str | bytes) -> Binding:
    d: dict[str, Any] = json.loads(text)
    source, local = d["source"], d["local"]
    return Binding(
        aor=d["aor"],
        contact=d["contact"],
        expires_at=d["expires_at"],
        call_id=d["call_id"],
        cseq=d["cseq"],
        q=d["q"],
        instance=d["instance"],
        reg_id=d["reg_id"],
        path=tuple(d["path"]),
        transport=d["transport"],
        source=(source[0], source[1]),
        local=(local[0], local[1]),
        conn_id=d["conn_id"],
        node=d["node"],
        user_agent=d["user_agent"],
        registered_at=d["registered_at"],
    )


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisLocationStore:
    """The location service in Redis: a binding made on one node is found by all.

    The client is borrowed (the `State` that made it closes it); it must be
    made with ``decode_responses=True``.
    """

    def __init__(self, client: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        # Changes made through this store (this node's REGISTERs and closed
        # flows); the AORs watched are read back after a removal.
        self.events = LocationEvents(on_subscribe=self._hear_others)
        # Other nodes' changes of watched AORs come by pub/sub: each store
        # publishes its own (for watched AORs only) and reads back theirs.
        self._origin = os.urandom(6).hex()  # skips its own messages
        self._listener: asyncio.Task[None] | None = None
        self._all = f"{prefix}loc-all"
        self._apply_script = client.register_script(_APPLY)
        self._remove_script = client.register_script(_REMOVE)
        self._remove_all_script = client.register_script(_REMOVE_ALL)
        self._remove_flow_script = client.register_script(_REMOVE_FLOW)

    def aor_key(self, aor: str) -> str:
        return f"{self._prefix}loc:{aor}"

    def tenant_key(self, tenant: str) -> str:
        return f"{self._prefix}loc-aors:{tenant}"

    def flow_key(self, node: str, conn_id: int) -> str:
        return f"{self._prefix}flow:{node}:{conn_id}"

    async def get(self, aor: str, now: float) -> list[Binding]:
        values = await self._redis.hvals(self.aor_key(aor))
        return sort_bindings(b for b in map(decode_binding, values) if b.expires_at > now)

    async def put(self, binding: Binding, now: float | None = None) -> None:
        await self.apply(binding.aor, (binding,), time.time() if now is None else now)

    async def remove(self, aor: str, key: str) -> None:
        await self._remove_script(keys=self._aor_keys(aor), args=[aor, key])
        await self._removed(aor, "remove")

    async def remove_all(self, aor: str) -> None:
        await self._remove_all_script(keys=self._aor_keys(aor), args=[aor])
        await self._removed(aor, "remove")

    def changes_channel(self) -> str:
        return f"{self._prefix}loc-changes"

    async def _removed(self, aor: str, cause: str) -> None:
        """Tell the watchers of `aor` what is left of it (a read, for watched AORs only)."""
        if self.events.watched(aor):
            now = time.time()
            self.events.changed(aor, cause, await self.get(aor, now), now)
            await self._publish(aor, cause)

    async def _publish(self, aor: str, cause: str) -> None:
        """Tell the other nodes that `aor` changed (they read it back if they watch it)."""
        message = json.dumps({"aor": aor, "cause": cause, "origin": self._origin})
        try:
            await self._redis.publish(self.changes_channel(), message)
        except Exception as exc:  # the write is made; other nodes learn at the next change
            log.warning("change of %s not published to the other nodes: %s", aor, exc)

    def _hear_others(self) -> None:
        if self._listener is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing to hear with (a synchronous test)
        self._listener = loop.create_task(self._listen(), name="location changes")

    async def _listen(self) -> None:
        """Other nodes' changes of the AORs watched here, told as if made here."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.changes_channel())
            while True:
                try:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    data = json.loads(message["data"])
                    aor, cause = str(data["aor"]), str(data["cause"])
                    if data.get("origin") == self._origin or not self.events.watched(aor):
                        continue
                    now = time.time()
                    self.events.changed(aor, cause, await self.get(aor, now), now)
                except asyncio.CancelledError:
                    raise
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("location change message not understood: %s", exc)
                except Exception as exc:  # Redis away: try again, the node keeps serving
                    log.warning("location changes from other nodes: %s; retrying", exc)
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(Exception):
                        await pubsub.subscribe(self.changes_channel())
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def remove_flow(self, node: str, conn_id: int) -> list[Binding]:
        flow = self.flow_key(node, conn_id)
        members = await self._redis.smembers(flow)
        if not members:
            return []
        by_aor: dict[str, list[str]] = {}
        for member in members:
            aor, _, key = member.partition("\n")
            by_aor.setdefault(aor, []).append(key)
        # Second round trip: the script is given every key it touches, which it
        # can only be once the members are known. It re-checks each binding.
        keys, args = [flow, self._all], [node, str(conn_id)]
        for aor, aor_keys in by_aor.items():
            keys += [self.aor_key(aor), self.tenant_key(tenant_of(aor))]
            args += [aor, str(len(aor_keys)), *aor_keys]
        removed = sort_bindings(
            map(decode_binding, await self._remove_flow_script(keys=keys, args=args))
        )
        for aor in dict.fromkeys(b.aor for b in removed):
            await self._removed(aor, "flow-closed")
        return removed

    async def count(self, now: float) -> int:
        return await self._redis.zcount(self._all, f"({now!r}", "+inf")

    async def aors(self, tenant: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return sorted(await self._redis.zrangebyscore(self.tenant_key(tenant), f"({now!r}", "+inf"))

    async def apply(
        self,
        aor: str,
        changes: Sequence[Change],
        now: float,
        *,
        order: tuple[str, int] | None = None,
        max_bindings: int | None = None,
    ) -> list[Binding]:
        check_changes(aor, changes)
        keys = self._aor_keys(aor)
        call_id, cseq = order if order is not None else ("", 0)
        args: list[str] = [
            repr(now),
            aor,
            call_id,
            str(cseq),
            "" if max_bindings is None else str(max_bindings),
        ]
        for change in changes:
            if isinstance(change, str):
                args += ["r", change, "", "", "0"]
                continue
            flow_index = 0
            if change.conn_id is not None:
                flow = self.flow_key(change.node, change.conn_id)
                if flow not in keys:
                    keys.append(flow)
                flow_index = keys.index(flow) + 1  # Lua counts from 1
            args += ["p", change.key, encode_binding(change), repr(change.expires_at)]
            args.append(str(flow_index))
        try:
            live = await self._apply_script(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("OUT_OF_ORDER"):
                raise OutOfOrder(f"{aor}: CSeq {cseq} of {call_id!r} is out of order") from None
            raise
        bindings = sort_bindings(map(decode_binding, live))
        if self.events.watched(aor):
            self.events.changed(aor, "register", bindings, now)
            await self._publish(aor, "register")
        return bindings

    async def close(self) -> None:
        self.events.close()  # (the client belongs to whoever made it)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None

    def _aor_keys(self, aor: str) -> list[str]:
        return [self.aor_key(aor), self.tenant_key(tenant_of(aor)), self._all]


# KEYS: 1 ban key, 2 failure zset, 3 bans zset
# ARGV: 1 now, 2 now - window, 3 threshold, 4 window ms, 5 ban until, 6 ban ms,
#       7 failure member (unique), 8 ip
_FAILURE = """
-- Compare the ban's end with the caller's clock, as is_banned() does.
local banned_until = redis.call('GET', KEYS[1])
if banned_until and tonumber(banned_until) > tonumber(ARGV[1]) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
return 1
"""


class RedisBanStore:
    """Bans shared by all nodes through Redis.

    `is_banned` answers from a local cache for `cache_ttl` seconds (a flood
    from one address costs one Redis call per address per `cache_ttl`, not
    one per packet); a ban made on another node is therefore honoured here
    within `cache_ttl`. Bans made through this object are seen at once.
    """

    def __init__(
        self,
        client: Redis,
        threshold: int = DEFAULT_THRESHOLD,
        window: float = DEFAULT_WINDOW,
        ban_time: float = DEFAULT_BAN_TIME,
        *,
        prefix: str = DEFAULT_PREFIX,
        cache_ttl: float = 1.0,
        cache_size: int = 100_000,
    ) -> None:
        check_params(threshold, window, ban_time)
        self.threshold = threshold
        self.window = window
        self.ban_time = ban_time
        self.cache_ttl = cache_ttl
        self._redis = client
        self._prefix = prefix
        self._bans_key = f"{prefix}bans"
        self._failure_script = client.register_script(_FAILURE)
        # ip -> (cached until, ban end or 0.0)
        self._cache: dict[str, tuple[float, float]] = {}
        self._cache_size = cache_size
        self._lookups: dict[str, asyncio.Future[float]] = {}
        # Failure members must be unique across nodes even for equal `now`.
        self._token = os.urandom(6).hex()
        self._counter = itertools.count()

    def ban_key(self, ip: str) -> str:
        return f"{self._prefix}ban:{ip}"

    def _failures_key(self, ip: str) -> str:
        return f"{self._prefix}authfail:{ip}"

    async def failure(self, ip: str, now: float) -> bool:
        until = now + self.ban_time
        banned = await self._failure_script(
            keys=[self.ban_key(ip), self._failures_key(ip), self._bans_key],
            args=[
                repr(now),
                repr(now - self.window),
                str(self.threshold),
                str(_ms(self.window)),
                repr(until),
                str(_ms(self.ban_time)),
                f"{now!r}/{self._token}/{next(self._counter)}",
                ip,
            ],
        )
        if banned:
            self._remember(ip, now, until)
        return bool(banned)

    async def is_banned(self, ip: str, now: float) -> bool:
        cached = self._cache.get(ip)
        if cached is not None and cached[0] > now:
            return cached[1] > now
        # Packets of a flood arrive together: they share one lookup.
        lookup = self._lookups.get(ip)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(ip, now))
            self._lookups[ip] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(ip, None))
        return await asyncio.shield(lookup) > now

    async def ban(self, ip: str, seconds: float, now: float) -> None:
        until = now + seconds
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.ban_key(ip), repr(until), px=_ms(seconds))
            pipe.zadd(self._bans_key, {ip: until})
            pipe.delete(self._failures_key(ip))
            await pipe.execute()
        self._remember(ip, now, until)

    async def unban(self, ip: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.ban_key(ip), self._failures_key(ip))
            pipe.zrem(self._bans_key, ip)
            await pipe.execute()
        self._cache.pop(ip, None)

    async def bans(self, now: float) -> dict[str, float]:
        rows = await self._redis.zrangebyscore(self._bans_key, f"({now!r}", "+inf", withscores=True)
        return dict(rows)

    async def close(self) -> None:
        pass  # the client belongs to whoever made it

    async def _lookup(self, ip: str, now: float) -> float:
        value = await self._redis.get(self.ban_key(ip))
        until = float(value) if value is not None else 0.0
        self._remember(ip, now, until)
        return until

    def _remember(self, ip: str, now: float, until: float) -> None:
        if len(self._cache) >= self._cache_size:
            # Spoofed sources can make the cache grow without end: keep only
            # the entries still fresh, and start over if that is not enough.
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
        self._cache[ip] = (now + self.cache_ttl, until)
