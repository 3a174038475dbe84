"""Where everything lives in Redis. Each unit's keys share one hash tag, and so do the
members' keys, so every script touches one slot and Redis Cluster works as one server does."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "use"


@dataclass(frozen=True)
class UnitKeys:
    """The keys of one unit (a task set, or one partition of a large one)."""

    prefix: str
    unit: str

    def _key(self, part: str) -> str:
        return f"{{{self.prefix}:u:{self.unit}}}:{part}"

    @property
    def lease(self) -> str:  # the holder's token, with a TTL
        return self._key("lease")

    @property
    def rows(self) -> str:  # task ID -> the task's row as JSON (FIELDS, the state first)
        return self._key("rows")

    @property
    def counters(self) -> str:  # ledger field -> total, moved only with a checked transition
        return self._key("counters")

    @property
    def aggregates(self) -> str:  # provider, and the set's other aggregates as JSON
        return self._key("aggregates")

    @property
    def tombstones(self) -> str:  # task ID -> "state hour"
        return self._key("tombstones")

    @property
    def inbox(self) -> str:  # IDs pushed to any replica, for the holder to track
        return self._key("inbox")


@dataclass(frozen=True)
class ClusterKeys:
    """The keys every replica shares."""

    prefix: str = DEFAULT_PREFIX

    @property
    def members(self) -> str:  # replica ID -> heartbeat expiry (ms, the server's clock)
        return f"{{{self.prefix}}}:members"

    @property
    def configs(self) -> str:  # replica ID -> its config hash
        return f"{{{self.prefix}}}:configs"

    @property
    def wake(self) -> str:  # channel: a unit's name, when IDs were pushed to it
        return f"{{{self.prefix}}}:wake"

    def unit(self, name: str) -> UnitKeys:
        return UnitKeys(self.prefix, name)

    def account(self, name: str) -> AccountKeys:
        return AccountKeys(self.prefix, name)


@dataclass(frozen=True)
class AccountKeys:
    """The keys of one account's shared call budget (cluster.budget), by its name in the config."""

    prefix: str
    account: str

    def _key(self, part: str) -> str:
        return f"{{{self.prefix}:acct:{self.account}}}:{part}"

    @property
    def window(self) -> str:  # sorted set: one member per call, scored by its start (µs, the server's clock)
        return self._key("window")

    @property
    def notbefore(self) -> str:  # set, with a PX expiry, while a server's Retry-After holds the account
        return self._key("notbefore")

    @property
    def rate(self) -> str:  # the lowered rate (calls/s) while below the cap; absent at the cap
        return self._key("rate")
