"""ipernity API: upload.checkTickets.

Sections, in the order every provider module keeps: config, request, parse, status map.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.core.classify import api_error
from exporter.core.errors import ProviderError, Rejected
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.model import FetchResult, TaskState, TaskStatus
from exporter.core.provider import Account, AccountField, CounterSpec, ErrorCodes, IdSyntax, Vocabulary

# -- config -----------------------------------------------------------------------------

ENDPOINT = "https://api.ipernity.com/api/"  # a method's URL is <endpoint><method>/json
METHOD = "upload.checkTickets"
TICKETS_LIMIT = 50  # the API's cap of tickets per call
# Tickets go comma-separated in one parameter: no comma, space or other separator in one.
ID_SYNTAX = IdSyntax(re.compile(r"[A-Za-z0-9_-]{1,64}"), "an upload ticket (letters, digits, '_' or '-')")


# -- status map -------------------------------------------------------------------------

# The API has no status word: a ticket is done, invalid, or neither (still processing).
DONE, INVALID, PENDING = "done", "invalid", "pending"
STATES: Mapping[str, TaskState] = {DONE: TaskState.DONE, INVALID: TaskState.NOT_FOUND, PENDING: TaskState.PENDING}

NOT_FOUND_CODE = "1"  # some or all tickets not found; the answer does not say which
ERRORS = ErrorCodes(
    auth={
        "100": "the api_key is missing: set the account's api_key",
        "101": "the api_key is invalid: set the account's api_key to the key of an ipernity application",
        "104": "the request signature is missing: set the account's api_secret",
        "105": "the request signature is invalid: set api_secret to the secret of this api_key",
        "106": "an auth token is required: set the account's auth_token",
        "107": "the auth_token is invalid or expired: authorize the application again and set the new token",
        "108": "the ipernity account of the auth_token is closed",
        "109": "the application or account is blocklisted: contact ipernity",
        "110": "the auth_token lacks the permission: upload.checkTickets needs doc write; authorize the "
        "application with write access to docs and set the new token",
        "111": "this IP address is not allowed for the api_key: allow it in the application's settings",
    },
    throttling={"112": 60.0, "113": 5.0},  # app quota (per hour or day) or client-IP rate (per second to hour)
    retryable=dict.fromkeys(("500", "501", "503")),
    rejected={NOT_FOUND_CODE: "", **dict.fromkeys(("102", "103", "120", "121", "122"), "")},
)


class Ipernity:
    """Statuses of upload tickets, asked at most 50 at a time and not before their ETA."""

    name: ClassVar[str] = "ipernity"
    batch_size: ClassVar[int] = TICKETS_LIMIT
    default_endpoint: ClassVar[str] = ENDPOINT
    default_rate_limit: ClassVar[float] = 2.0
    account_fields: ClassVar[Sequence[AccountField]] = (
        AccountField("api_key", "secret", "the application's API key", required=True),
        AccountField("api_secret", "secret", "the application's secret, to sign requests", required=True),
        # upload.checkTickets is a signed call with a token holding the doc write permission.
        AccountField(
            "auth_token", "secret", "the user's auth token, authorized with doc write permission", required=True
        ),
    )
    vocabulary: ClassVar[Vocabulary] = Vocabulary(
        statuses=frozenset(STATES),
        fault_codes=frozenset(),  # a ticket is done or invalid; the API gives no reason
        api_error_codes=ERRORS.known,
    )
    errors: ClassVar[ErrorCodes] = ERRORS
    counters: ClassVar[Sequence[CounterSpec]] = ()
    max_body_bytes: ClassVar[int] = 1024 * 1024  # 50 tickets

    @classmethod
    def task_id_syntax(cls, account: Account) -> IdSyntax:
        return ID_SYNTAX

    def __init__(self, account: Account, http: HttpClient) -> None:
        self._http = http
        self._url = f"{account.endpoint.rstrip('/')}/{METHOD}/json"
        self._api_key = account.secret("api_key")
        self._api_secret = account.secret("api_secret")
        self._auth_token = account.secret("auth_token")

    async def fetch(self, task_ids: Sequence[str]) -> FetchResult:
        """Statuses of these tickets; a pending one is not due again before its ETA has passed."""
        statuses: list[TaskStatus] = []
        etas: list[float] = []
        omitted: list[str] = []
        await self._check(list(task_ids), statuses, etas, omitted)
        return FetchResult(statuses, max(etas) if etas else None, omitted=omitted)

    # -- request ------------------------------------------------------------------------

    async def _check(
        self, tickets: list[str], statuses: list[TaskStatus], etas: list[float], omitted: list[str]
    ) -> None:
        """One call; error 1 halves the batch until a lone ticket answers it (at most 2n-1 calls)."""
        parse = functools.partial(_parse_tickets, now=self._http.clock())
        try:
            found, eta = await self._http.call("POST", self._url, parse, data=self._form(tickets))
        except TicketsNotFound:
            if len(tickets) <= 1:  # the API says all asked tickets are unknown
                statuses.extend(TaskStatus(t, TaskState.NOT_FOUND, INVALID) for t in tickets)
                return
            half = len(tickets) // 2
            await self._check(tickets[:half], statuses, etas, omitted)
            await self._check(tickets[half:], statuses, etas, omitted)
            return
        statuses.extend(s for t in tickets if (s := found.get(t)) is not None)
        omitted.extend(t for t in tickets if t not in found)
        if eta is not None:
            etas.append(eta)

    def _form(self, tickets: Sequence[str]) -> dict[str, str]:
        params = {"api_key": self._api_key, "auth_token": self._auth_token, "tickets": ",".join(tickets)}
        return {**params, "api_sig": sign(params, METHOD, self._api_secret)}


def sign(params: Mapping[str, str], method: str, secret: str) -> str:
    """api_sig: md5 hex of every name+value sorted by name, then the method, then the secret."""
    text = "".join(f"{k}{v}" for k, v in sorted(params.items())) + method + secret
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


# -- parse ------------------------------------------------------------------------------


class TicketsNotFound(Rejected):
    """Error 1: some or all of the asked tickets are unknown."""


def _parse_tickets(response: HttpResponse, *, now: float) -> tuple[dict[str, TaskStatus], float | None]:
    """The answered tickets' statuses by ID, and the batch's global ETA."""
    tickets = _payload(response)["tickets"]
    items = tickets.get("ticket") or []
    statuses = (_status(item, now) for item in ([items] if isinstance(items, dict) else items))
    return {s.task_id: s for s in statuses}, _number(tickets.get("eta"))


def _payload(response: HttpResponse) -> Mapping[str, Any]:
    """The body when api.status is ok; otherwise the API's error, or the HTTP error if it gave none."""
    if response.status >= 500 or response.status == 429:
        response.raise_for_status()
    body = response.json()
    api = body["api"]
    if api.get("status") != "ok":
        raise _api_error(api, response.where)
    response.raise_for_status()
    return body  # type: ignore[no-any-return]


def _status(item: Mapping[str, Any], now: float) -> TaskStatus:
    raw = DONE if _flag(item.get("done")) else INVALID if _flag(item.get("invalid")) else PENDING
    eta = _number(item.get("eta")) if raw == PENDING else None
    return TaskStatus(
        task_id=str(item["id"]),
        state=STATES[raw],
        provider_status=raw,
        eta_seconds=eta,
        # The API asks not to be asked about a ticket before its ETA has passed.
        not_before=now + eta if eta is not None else None,
    )


def _flag(value: object) -> bool:
    return str(value or "0").strip() not in ("0", "", "false")


def _number(value: object) -> float | None:
    """A count or duration that may come as an int or a string; never negative."""
    return None if value is None or value == "" else max(0.0, float(str(value)))


def _api_error(api: Mapping[str, Any], where: str) -> ProviderError:
    code = str(api.get("code"))
    message = f"API error {code} from {where}: {str(api.get('message', ''))[:200]}"
    if code == NOT_FOUND_CODE:
        return TicketsNotFound(message, api_code=code)
    return api_error(ERRORS, code, message)
