"""Yandex Direct API v4 Live: AdImage / CheckUploadStatus.

Sections, in the order every provider module keeps: config, request, parse, status map.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import msgspec

from exporter.core.classify import api_error
from exporter.core.errors import BadResponse, ProviderError
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.model import FetchResult, LazyStatuses, TaskState, TaskStatus
from exporter.core.pages import CompactPage, ItemPage, Page, compact_page, names_as_asked, status_page
from exporter.core.provider import Account, AccountField, CounterSpec, ErrorCodes, IdSyntax, Vocabulary

# -- config -----------------------------------------------------------------------------

PAGE_LIMIT = 10_000  # the API's cap of tasks per response
LOGINS_PER_CALL = 10  # the API's cap of agency client logins per call
MAX_PAGES = 1_000  # bounds every paging loop, whatever TotalObjectsCount says
ID_SYNTAX = IdSyntax(re.compile(r"[1-9][0-9]{0,17}"), "a positive integer (an AdImageUploadTaskID)")
ID_LIST = re.compile(r"[1-9][0-9]{0,17}(?:,[1-9][0-9]{0,17})*")  # a batch's IDs, comma-separated: one match
IDS_MARK = '"AdImageUploadTaskIDS": [0]'  # where a request's IDs go, as the text they were asked with
TEXT_CAP = 200  # characters of an API text kept in a message


# -- status map -------------------------------------------------------------------------

STATES: Mapping[str, TaskState] = {"Pending": TaskState.PENDING, "Done": TaskState.DONE, "Error": TaskState.ERROR}
STATUS_NAMES: Mapping[str, str] = {name: name for name in STATES}

# Request-level codes (v5 meanings; v4 uses the same numbers for these).
ERRORS = ErrorCodes(
    auth={
        "53": "the OAuth token is invalid or expired: issue a new token",
        "54": "the token's user has no rights for this operation or these logins",
        "58": "the Direct account registration is incomplete",
        "513": "the login is not connected to Direct",
        "3000": "the application has no API access: request access in the Direct API settings",
        "3001": "the application has no access to the AdImage method",
    },
    # Units spent, or too many connections: a minute's pause is the least that helps the first.
    throttling={"152": 60.0, "506": 5.0},
    retryable=dict.fromkeys(("52", "1000", "1001", "1002")),
)


class YandexDirect:
    """Statuses of AdImage upload tasks, by ID or by listing every task (discovery)."""

    name: ClassVar[str] = "yandex_direct"
    batch_size: ClassVar[int] = PAGE_LIMIT
    default_endpoint: ClassVar[str] = "https://api.direct.yandex.ru/live/v4/json/"
    default_rate_limit: ClassVar[float] = 5.0
    account_fields: ClassVar[Sequence[AccountField]] = (
        AccountField("token", "secret", "the OAuth token", required=True),
        AccountField("logins", "str_list", "agency client logins; none for an advertiser", default=()),
        AccountField("locale", "str", "language of error texts (en, ru, uk, tr)", default="en"),
    )
    vocabulary: ClassVar[Vocabulary] = Vocabulary(
        statuses=frozenset(STATES),
        # Item fault codes of the Direct API (the 5000-9000 validation families).
        fault_codes=frozenset(
            {
                "1000",
                "1002",
                "5000",
                "5001",
                "5004",
                "5005",
                "5006",
                "5008",
                "6000",
                "7000",
                "8000",
                "8300",
                "8800",
                "9000",
            }
        ),
        api_error_codes=ERRORS.known,
    )
    errors: ClassVar[ErrorCodes] = ERRORS
    counters: ClassVar[Sequence[CounterSpec]] = ()
    max_body_bytes: ClassVar[int] = 32 * 1024 * 1024  # a page of 10,000 tasks with long URLs

    @classmethod
    def task_id_syntax(cls, account: Account) -> IdSyntax:
        return ID_SYNTAX

    def __init__(self, account: Account, http: HttpClient) -> None:
        self._http = http
        self._url = account.endpoint
        self._token = account.secret("token")
        self._locale = account.text("locale")
        logins = account.texts("logins")
        self._login_groups: list[tuple[str, ...]] = [
            logins[i : i + LOGINS_PER_CALL] for i in range(0, len(logins), LOGINS_PER_CALL)
        ] or [()]

    async def fetch(self, task_ids: Sequence[str]) -> FetchResult:
        """Statuses of these tasks. The API drops tasks after about a day without saying so: IDs
        its answers leave out are omitted, and not_found once the core has seen that often enough.
        An answer naming every ID asked once, in the order asked (the usual), is kept compact."""
        # IDs are checked where they enter; this is the last guard, as an empty list would ask for all.
        text = _id_text(task_ids)
        asked = task_ids if text is not None else [t for t in task_ids if ID_SYNTAX.accepts(t)]
        ids = ",".join(asked) if text is None else text
        pages: list[Page] = [page for logins in self._login_groups if asked async for page in self._pages(logins, ids)]
        compact = [p for p in pages if isinstance(p, CompactPage)]
        if len(compact) == len(pages) and len(self._login_groups) == 1 and names_as_asked(compact, text or "-"):
            return FetchResult(status_page(compact, task_ids, KINDS, _status))
        found: dict[str, tuple[Any, ...]] = {}
        for page in pages:
            items = page.items(KINDS)
            found.update(zip(map(_TASK_ID, items), items, strict=True))
        pages.clear()
        if len(found) > len(asked):  # the answer named tasks not asked about
            for task_id in found.keys() - set(asked):
                del found[task_id]
        # Every ID asked (each once) was answered: nothing left out, without a walk to say so.
        omitted = [] if len(found) == len(task_ids) else [t for t in task_ids if t not in found]
        return FetchResult(LazyStatuses(list(found.values()), _status), omitted=omitted)

    async def discover(self) -> FetchResult:
        """Every task of about the last day: an empty selection lists them all."""
        items: list[tuple[Any, ...]] = []
        for logins in self._login_groups:
            async for page in self._pages(logins, ""):
                items.extend(page.items(KINDS))
        return FetchResult(LazyStatuses(items, _status))

    # -- request ------------------------------------------------------------------------

    async def _pages(self, logins: Sequence[str], ids: str) -> AsyncIterator[Page]:
        """Page through CheckUploadStatus until TotalObjectsCount is reached (bounded); without a
        total (it may be null), until a page is not full."""
        offset, pages, at = 0, 0, 0
        while True:
            if pages >= MAX_PAGES:
                raise BadResponse(f"more than {MAX_PAGES} pages of upload tasks; narrow the selection")
            body = self._body(logins, ids, offset)
            parse = functools.partial(_parse_compact, asked=ids, at=at)
            page, total = await self._http.call("POST", self._url, parse, data=body, headers=JSON)
            yield page
            pages += 1
            offset += len(page)
            at += len(page.ids) + 1
            # An empty page: the API ran out before its own total, nothing more to ask.
            if not page or (offset >= total if total is not None else len(page) < PAGE_LIMIT):
                return

    def _body(self, logins: Sequence[str], ids: str, offset: int) -> bytes:
        """The request; the IDs (comma-separated, checked) go in as they are, as the API's integer array."""
        criteria: dict[str, Any] = {"Limit": PAGE_LIMIT, "Offset": offset}
        if logins:
            criteria["Logins"] = list(logins)
        if ids:
            criteria["AdImageUploadTaskIDS"] = [0]
        request = {
            "method": "AdImage",
            "token": self._token,
            "locale": self._locale,
            "param": {"Action": "CheckUploadStatus", "SelectionCriteria": criteria},
        }
        # The mark's quotes cannot appear unescaped inside a string: it is found only as the key.
        return json.dumps(request).replace(IDS_MARK, f'"AdImageUploadTaskIDS": [{ids}]', 1).encode()


# -- parse ------------------------------------------------------------------------------


_Item = tuple[str, str, Any]  # task ID, Status, and Error where the status is Error


class _Upload(msgspec.Struct, gc=False):
    """The fields of an upload task that are kept; the others (hash, URLs, name) are never built."""

    AdImageUploadTaskID: int | str
    Status: Any = ""
    Error: Any = None


class _Data(msgspec.Struct, gc=False):
    AdImageUploads: list[_Upload] | None = None
    TotalObjectsCount: int | None = None  # nillable in the API's schema


class _Answer(msgspec.Struct, gc=False):
    data: _Data | None = None
    error_code: Any = None
    error_str: Any = None
    error_detail: Any = None


def _raw_answer(status: Any) -> msgspec.json.Decoder[Any]:
    """A decoder of the answer that keeps each task's ID as the answer wrote it (checked before
    it is used), its status read as `status`, and its Error; the other fields are never built."""
    upload = msgspec.defstruct(
        "_RawUpload", [("AdImageUploadTaskID", msgspec.Raw), ("Status", status, ""), ("Error", Any, None)], gc=False
    )
    data = msgspec.defstruct(
        "_RawData",
        [("AdImageUploads", list[upload] | None, None), ("TotalObjectsCount", int | None, None)],  # type: ignore[valid-type]
        gc=False,
    )
    answer = msgspec.defstruct("_RawAnswer", [("data", data | None, None), ("error_code", Any, None)], gc=False)
    return msgspec.json.Decoder(answer, strict=False)


_ANSWER = msgspec.json.Decoder(_Answer, strict=False)  # numbers sent as strings are read too
# The usual answer's statuses are the known words: read as the decoder's own strings, not one
# string a task to build and free; an answer with any other is read again with any status.
_KNOWN_ANSWER = _raw_answer(Literal["Pending", "Done", "Error", ""])
_RAW_ANSWER = _raw_answer(Any)
_TASK_ID = operator.itemgetter(0)  # of an _Item
_ID, _WORD = operator.attrgetter("AdImageUploadTaskID"), operator.attrgetter("Status")
# A compact page's kinds: the fields after the ID shared by every status of a kind; errors are apart.
KINDS: Sequence[tuple[str, Any]] = (("Pending", None), ("Done", None))
CODES: Mapping[str, int] = {raw: code for code, (raw, _) in enumerate(KINDS)}
JSON = {"Content-Type": "application/json"}


def _parse_compact(response: HttpResponse, asked: str = "", at: int = 0) -> tuple[Page, int | None]:
    """One page, kept compact when it is the usual one (core.pages): a 2xx answer whose task IDs
    are plain integers; any other is read by `_parse_page`, which says what is wrong with it."""
    answer = _raw_decode(response.body) if response.status < 300 else None
    if answer is not None and answer.error_code is None and answer.data is not None:
        uploads = answer.data.AdImageUploads or ()
        page = compact_page(map(_ID, uploads), map(_WORD, uploads), CODES, lambda i: _fields(uploads[i]), asked, at)
        if page is not None:
            return page, answer.data.TotalObjectsCount
    items, total = _parse_page(response)
    return ItemPage(items), total


def _raw_decode(body: bytes) -> Any:
    """The answer as the raw decoders read it, or None when neither can."""
    for decoder in (_KNOWN_ANSWER, _RAW_ANSWER):
        try:
            return decoder.decode(body)
        except msgspec.ValidationError:
            continue  # a status word of another kind, or a field of another type
        except msgspec.DecodeError:
            return None  # not JSON at all
    return None


def _parse_page(response: HttpResponse) -> tuple[list[_Item], int | None]:
    """One page: its tasks (decoded into statuses when applied) and TotalObjectsCount."""
    if response.status >= 500 or response.status == 429:
        response.raise_for_status()
    answer = response.decode(_ANSWER)
    if answer.error_code is not None:
        raise _api_error(answer, response.where)
    response.raise_for_status()
    if answer.data is None:
        raise BadResponse(f"no data in the answer from {response.where}")
    return [_item(upload) for upload in answer.data.AdImageUploads or ()], answer.data.TotalObjectsCount


def _item(upload: _Upload) -> _Item:
    """What a status is built from; the page's objects are freed once it is parsed."""
    return str(upload.AdImageUploadTaskID), *_fields(upload)


def _fields(upload: Any) -> tuple[str, Any]:
    status = str(upload.Status)
    raw = STATUS_NAMES.get(status, status)  # the page's own copies of "Pending" go with the page
    failed = STATES.get(raw) is TaskState.ERROR
    return raw, upload.Error if failed else None


def _id_text(task_ids: Sequence[str]) -> str | None:
    """The IDs comma-separated, if every one is in the API's syntax (none can hide a comma: the
    text has one fewer than there are IDs); else None."""
    text = ",".join(task_ids)
    return text if text.count(",") == len(task_ids) - 1 and ID_LIST.fullmatch(text) else None


def _status(task_id: str, raw: str, error: Any) -> TaskStatus:
    """Never raises, whatever the answer's Error holds."""
    state = STATES.get(raw, TaskState.PENDING)
    if state is not TaskState.ERROR:
        return TaskStatus(task_id, state, raw)
    if not isinstance(error, Mapping):
        error = {}
    return TaskStatus(
        task_id=task_id,
        state=state,
        provider_status=raw,
        fault_code=str(error.get("FaultCode", "")),
        fault_message=" ".join(str(error.get(k, "")) for k in ("FaultString", "FaultDetail")).strip(),
    )


def _api_error(answer: _Answer, where: str) -> ProviderError:
    code = str(answer.error_code)
    # error_str names the kind of error; error_detail says what is wrong ("Invalid OAuth token").
    text = "; ".join(str(t) for t in (answer.error_str, answer.error_detail) if t)[:TEXT_CAP]
    return api_error(ERRORS, code, f"API error {code} from {where}: {text}")
