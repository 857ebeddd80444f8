"""Who may authenticate: agents from the config file and the directory database.

Both give HA1 values per algorithm with realm = tenant id; plain passwords
from the config are hashed once at start and then forgotten. Directory
records are cached briefly so that a registration storm does not become a
database storm; a password changed with `switch agent set-password` takes
effect within `cache_ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import Config
from ..sip.digest import compute_ha1
from ..store.directory import AgentRecord, Directory

ALGORITHMS = ("MD5", "SHA-256")


class Accounts:
    def __init__(
        self,
        config: Config,
        directory: Directory | None = None,
        cache_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.directory = directory
        self.cache_ttl = cache_ttl
        self._clock = clock
        self._static: dict[tuple[str, str], dict[str, str]] = {}
        for tenant in config.tenants.values():
            for ext, agent in tenant.agents.items():
                self._static[(tenant.id, ext)] = {
                    alg: compute_ha1(ext, tenant.id, agent.password, alg) for alg in ALGORITHMS
                }
        # Trunks that register to us (inbound_register) are accounts of their
        # tenant too, in the same realm: they REGISTER and are challenged like agents.
        self.trunk_accounts: dict[tuple[str, str], str] = {}  # (tenant, username) -> trunk
        for tenant in config.tenants.values():
            for name, trunk in tenant.trunks.items():
                account = trunk.inbound_register
                if account is None:
                    continue
                self.trunk_accounts[(tenant.id, account.username)] = name
                self._static[(tenant.id, account.username)] = {
                    alg: compute_ha1(account.username, tenant.id, account.password, alg)
                    for alg in ALGORITHMS
                }
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        # Extensions known per tenant, for finding the tenant of a request.
        self._owners: dict[str, set[str]] = {}
        for tenant_id, ext in self._static:
            self._owners.setdefault(ext, set()).add(tenant_id)
        self._domains = {
            domain: tenant.id for tenant in config.tenants.values() for domain in tenant.domains
        }

    async def load_directory(self) -> None:
        """Learn which tenant each directory agent belongs to (at start)."""
        if self.directory is None:
            return
        for record in await self.directory.list():
            self._owners.setdefault(record.extension, set()).add(record.tenant)
            self._remember(record.tenant, record.extension, record)

    def tenant_for(self, user: str, host: str) -> str | None:
        """The tenant a request from `user@host` belongs to, if it can be told.

        By SIP domain first; else by extension when exactly one tenant has it;
        else, with a single tenant configured, that one.
        """
        tenant = self._domains.get(host.lower())
        if tenant is not None:
            return tenant
        owners = self._owners.get(user)
        if owners and len(owners) == 1:
            return next(iter(owners))
        if len(self.config.tenants) == 1:
            return next(iter(self.config.tenants))
        return None

    async def ha1s(self, tenant: str, ext: str) -> dict[str, str] | None:
        """HA1 per algorithm for an agent, or None when there is no such agent."""
        static = self._static.get((tenant, ext))
        if static is not None:
            return static
        if self.directory is None:
            return None
        cached = self._cache.get((tenant, ext))
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        record = await self.directory.get(tenant, ext)
        return self._remember(tenant, ext, record)

    def _remember(self, tenant: str, ext: str, record: AgentRecord | None) -> dict[str, str] | None:
        value = None
        if record is not None and record.realm == tenant:
            value = {alg: record.ha1(alg) for alg in ALGORITHMS}
            self._owners.setdefault(ext, set()).add(tenant)
        if len(self._cache) > 100_000:  # unknown names come from the network
            self._cache.clear()
        self._cache[(tenant, ext)] = (self._clock() + self.cache_ttl, value)
        return value
