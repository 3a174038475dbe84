"""The seam between the core and the providers.

The core depends on this module, never on a provider: `exporter.providers.PROVIDERS` is
handed to the core by the CLI. A provider turns a batch of task IDs into normalized
statuses and declares its limits and vocabularies; batching, scheduling, retries, rate
limits, state and metrics belong to the core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

from exporter.core.model import FetchResult

if TYPE_CHECKING:
    from exporter.core.http import HttpClient

FieldKind = Literal["str", "secret", "str_list", "int", "float", "bool"]


@dataclass(frozen=True, slots=True)
class AccountField:
    """One provider-specific key of an account in the config file.

    `secret` fields are read from `{env: NAME}` or `{file: PATH}`, never inline.
    """

    name: str
    kind: FieldKind
    help: str
    required: bool = False
    default: object = None
    choices: tuple[str, ...] = ()  # for "str" fields: the allowed values; () for any
    minimum: float = 0  # for "int" and "float" fields: the range accepted (a value outside is refused)
    maximum: float = 1e9
    batch_cap: bool = False  # an "int" field capping this account's task IDs per request, below batch_size


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """A provider-specific counter fed by `Tally` values of tasks reaching a final state.

    Rendered as `upload_<name>_total{provider,task_set[,<label>]}`.
    """

    name: str
    help: str
    label: str = ""  # the label name for Tally.label; "" for none
    title: str = ""  # of its dashboard panel
    unit: str = "ops"  # Grafana unit of the panel's per-second rate ("Bps" for bytes)


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """What a provider's API error codes mean, as data; `core.errors.api_error` acts on it.

    Every code named here is a known label value of `upload_provider_api_errors_total`;
    any other is exported as `other`, and refused like a `rejected` code.
    """

    auth: Mapping[str, str] = field(default_factory=dict)  # code -> what to fix; not retried
    throttling: Mapping[str, float | None] = field(default_factory=dict)  # code -> least pause (s); slows down
    retryable: Mapping[str, float | None] = field(default_factory=dict)  # code -> least pause (s); retried
    rejected: Mapping[str, str] = field(default_factory=dict)  # code -> hint ("" for none); not retried

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.auth) | frozenset(self.throttling) | frozenset(self.retryable) | frozenset(self.rejected)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Bounded label values of a provider. Anything else is exported as `other`."""

    statuses: frozenset[str]
    fault_codes: frozenset[str]
    api_error_codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class IdSyntax:
    """What a task ID of a provider looks like; anything else is refused where IDs enter."""

    pattern: re.Pattern[str]
    description: str  # for messages: "a positive integer (AdImageUploadTaskID)"

    def accepts(self, task_id: str) -> bool:
        return self.pattern.fullmatch(task_id) is not None


class Account(Protocol):
    """What a provider reads of its account (`core.config.AccountConfig`): each option typed by
    its `AccountField`, defaults applied."""

    @property
    def endpoint(self) -> str: ...

    def secret(self, key: str) -> str: ...

    def text(self, key: str) -> str: ...

    def texts(self, key: str) -> tuple[str, ...]: ...

    def integer(self, key: str) -> int: ...


@runtime_checkable
class Provider(Protocol):
    """What every provider module exports as its client class."""

    name: ClassVar[str]  # config key and `provider` label
    batch_size: ClassVar[int]  # the API's cap of task IDs per request
    default_endpoint: ClassVar[str]
    default_rate_limit: ClassVar[float]  # calls per second per account
    account_fields: ClassVar[Sequence[AccountField]]
    vocabulary: ClassVar[Vocabulary]
    errors: ClassVar[ErrorCodes]  # what its API error codes mean
    counters: ClassVar[Sequence[CounterSpec]]
    max_body_bytes: ClassVar[int]  # the largest answer read; a larger one is refused while streaming

    @classmethod
    def task_id_syntax(cls, account: Account) -> IdSyntax:
        """The syntax of task IDs for this account."""
        ...

    def __init__(self, account: Account, http: HttpClient) -> None: ...

    async def fetch(self, task_ids: Sequence[str]) -> FetchResult:
        """Statuses of these task IDs (at most `batch_size`). Raises ProviderError only.

        An ID the API says it does not know is a `not_found` status; an ID the answer merely
        leaves out goes in `FetchResult.omitted`, and the core asks for it again.
        """
        ...


@runtime_checkable
class Discovering(Protocol):
    """Optional capability: the API can list the account's tasks without being told IDs."""

    async def discover(self) -> FetchResult:
        """Every task the API knows of. Raises ProviderError only."""
        ...


ProviderRegistry = Mapping[str, type[Provider]]
