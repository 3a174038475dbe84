"""Wiring: config + provider registry -> limiters, HTTP clients, providers, runners, the renderer."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import aiohttp

from exporter.core import partitions
from exporter.core.collector import Exposition, StateCollector
from exporter.core.config import Config, TaskSetConfig
from exporter.core.http import HttpClient
from exporter.core.model import RequestTally
from exporter.core.placement import Placement
from exporter.core.provider import ProviderRegistry
from exporter.core.proxy import proxy_settings
from exporter.core.ratelimit import AccountLimiter
from exporter.core.retries import BACKOFF_BASE_SECONDS
from exporter.core.scheduler import Scheduler, TaskSetRunner
from exporter.core.state import StateStore


def build_scheduler(
    config: Config,
    providers: ProviderRegistry,
    store: StateStore,
    session: aiohttp.ClientSession,
    *,
    clock: Callable[[], float] = time.time,
    backoff_base: float = BACKOFF_BASE_SECONDS,
    placement: Placement | None = None,
) -> Scheduler:
    """One runner per task set; one limiter per account, shared by every set using it. With a
    placement, a set's state exists only while this process holds it."""
    pace = AccountLimiter if placement is None else placement.limiter
    limiters = {name: pace(acc.rate_limit, acc.max_concurrency, name=name) for name, acc in config.accounts.items()}
    runners = []
    for unit in unit_configs(config):
        account = config.accounts[unit.account]
        provider_cls = providers[account.provider]
        ensure = functools.partial(
            store.ensure_set,
            unit.name,
            provider_cls.name,
            provider_cls.vocabulary,
            id_syntax=provider_cls.task_id_syntax(account),
            not_found_after=unit.not_found_after,
        )
        if placement is None:
            ensure()
        tally = RequestTally()
        http = HttpClient(
            session,
            limiters[unit.account],
            timeout=account.timeout,
            observe=tally.add,
            clock=clock,
            max_body_bytes=provider_cls.max_body_bytes,
            **proxy_settings(account),
        )
        caps = [account.integer(f.name) for f in provider_cls.account_fields if f.batch_cap]
        runners.append(
            TaskSetRunner(
                unit,
                provider_cls(account, http),
                store,
                tally=tally,
                clock=clock,
                backoff_base=backoff_base,
                account_cap=min(caps, default=None),
                ensure=ensure,
                holding=None if placement is None else placement.holding(unit.name),
            )
        )
    store.retain_sets(r.config.name for r in runners if placement is None or placement.holds(r.config.name))
    return Scheduler(runners)


def unit_configs(config: Config) -> list[TaskSetConfig]:
    """Every unit polled apart: each set, or each partition of a partitioned set."""
    return [
        dataclasses.replace(ts, name=name, partition=p) if ts.partitions > 1 else ts
        for ts in config.task_sets
        for p, name in enumerate(partitions.units(ts))
    ]


def build_exposition(config: Config, providers: ProviderRegistry, store: StateStore) -> Exposition:
    """The /metrics renderer for this config."""
    used = {config.accounts[ts.account].provider for ts in config.task_sets}
    units = unit_configs(config)
    collector = StateCollector(
        store,
        extra_labels={
            u.name: {**u.labels, "partition": str(u.partition)} if u.partition is not None else u.labels for u in units
        },
        # A partitioned set's cap on per-task series is shared by its partitions.
        per_task_caps={u.name: u.per_task_series and max(1, u.per_task_series // u.partitions) for u in units},
        provider_counters={name: providers[name].counters for name in used},
    )
    return Exposition(store, collector)
