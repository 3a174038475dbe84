"""encoding.com API: the XML action GetStatus, several media IDs per request.

Sections, in the order every provider module keeps: config, request, parse, status map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar
from xml.etree.ElementTree import Element, SubElement, tostring

from exporter.core.classify import api_error
from exporter.core.errors import BadResponse, ProviderError
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.model import FetchResult, Tally, TaskState, TaskStatus
from exporter.core.provider import Account, AccountField, CounterSpec, ErrorCodes, IdSyntax, Vocabulary
from exporter.core.secrets import redact

# -- config -----------------------------------------------------------------------------

MEDIA_CAP = 100  # our hard cap of media IDs per call; the API documents none
MEDIA_PER_REQUEST = 25  # default of the account's max_media_per_request
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, no zone; "0000-00-00 00:00:00" means not yet
TEXT_CAP = 200  # characters of an API text kept in a message
ID_SYNTAX = IdSyntax(re.compile(r"[0-9]{1,20}"), "a numeric media ID")


# -- status map -------------------------------------------------------------------------

STATES: Mapping[str, TaskState] = {
    "Finished": TaskState.DONE,
    "Error": TaskState.ERROR,
    "Stopped": TaskState.ERROR,
    "Deleted": TaskState.NOT_FOUND,
}
# Every other status is pending; these are the ones known to occur (both spellings seen).
PENDING_STATUSES = frozenset(
    {
        "New",
        "Downloading",
        "Downloaded",
        "Ready to process",
        "Waiting for encoder",
        "Waitingforencoder",
        "Processing",
        "Saving",
        "Saved",
        "Closed",
    }
)

# Bounded codes for the texts of <errors><error>; the first pattern that matches wins.
API_ERRORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("auth", re.compile(r"user ?(id|key)|authenticat|unauthori[sz]ed|not authori[sz]ed", re.I)),
    ("wrong_mediaid", re.compile(r"media ?id|no such media|media (was )?not found", re.I)),
    ("rate_limit", re.compile(r"limit|too many|throttl", re.I)),
    ("maintenance", re.compile(r"maintenance|temporar|try again|unavailable", re.I)),
)
OTHER_CODE = "other"
ERRORS = ErrorCodes(
    auth={"auth": "check the account's userid and userkey (the encoding.com user ID and user key)"},
    throttling={"rate_limit": 60.0},
    retryable={"maintenance": 60.0},
    rejected={"wrong_mediaid": "", OTHER_CODE: ""},
)
CALL_ERRORS = frozenset(ERRORS.auth) | frozenset(ERRORS.throttling) | frozenset(ERRORS.retryable)  # fail the call

# Bounded reasons for a destination's "Error (...)"; no URL or free text reaches a label.
DESTINATION_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("access_denied", re.compile(r"access denied|forbidden|permission|credential|signature|auth|\b403\b", re.I)),
    ("not_found", re.compile(r"not found|no such|does not exist|\b404\b", re.I)),
    ("timeout", re.compile(r"time ?out|timed out", re.I)),
    ("connection", re.compile(r"connect|refused|reset|resolve|unreachable|network", re.I)),
)
DOWNLOAD_FAULT = re.compile(r"download|source", re.I)
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)  # destination URLs may embed credentials


class EncodingCom:
    """Statuses of encoding.com media, by media ID (GetStatus in extended mode)."""

    name: ClassVar[str] = "encoding_com"
    batch_size: ClassVar[int] = MEDIA_CAP
    default_endpoint: ClassVar[str] = "https://manage.encoding.com/"
    default_rate_limit: ClassVar[float] = 2.0  # the API documents no limit: stay gentle
    account_fields: ClassVar[Sequence[AccountField]] = (
        AccountField("userid", "str", "the encoding.com user ID", required=True),
        AccountField("userkey", "secret", "the encoding.com user key", required=True),
        AccountField(
            "max_media_per_request",
            "int",
            f"media IDs per GetStatus call (1 to {MEDIA_CAP})",
            default=MEDIA_PER_REQUEST,
            minimum=1,
            maximum=MEDIA_CAP,
            batch_cap=True,
        ),
    )
    vocabulary: ClassVar[Vocabulary] = Vocabulary(
        statuses=frozenset(STATES) | PENDING_STATUSES,
        fault_codes=frozenset({"destination_error", "download_error", "processing_error", "stopped"}),
        api_error_codes=ERRORS.known,
    )
    errors: ClassVar[ErrorCodes] = ERRORS
    counters: ClassVar[Sequence[CounterSpec]] = (
        CounterSpec(
            "destination_errors",
            "Failed output destinations of media that reached a final state, "
            "by reason (access_denied, not_found, timeout, connection, other).",
            label="reason",
            title="Destination errors by reason",
        ),
    )

    max_body_bytes: ClassVar[int] = 4 * 1024 * 1024  # 100 media with their formats in extended mode

    @classmethod
    def task_id_syntax(cls, account: Account) -> IdSyntax:
        return ID_SYNTAX

    def __init__(self, account: Account, http: HttpClient) -> None:
        self._http = http
        self._url = account.endpoint
        self._userid = account.text("userid")
        self._userkey = account.secret("userkey")
        self._per_call = account.integer("max_media_per_request")

    async def fetch(self, task_ids: Sequence[str]) -> FetchResult:
        """Statuses of these media; IDs an error names as unknown are not_found, and media an
        answer leaves out without naming them are omitted."""
        statuses: list[TaskStatus] = []
        codes: list[str] = []
        omitted: list[str] = []
        step = self._per_call  # the scheduler's batches fit; a longer list is split
        for i in range(0, len(task_ids), step):
            answer = await self._get_status(task_ids[i : i + step])
            statuses.extend(answer.statuses)
            codes.extend(answer.codes)
            omitted.extend(answer.omitted)
        return FetchResult(statuses, api_error_codes=codes, omitted=omitted)

    # -- request ------------------------------------------------------------------------

    async def _get_status(self, ids: Sequence[str]) -> _Resolved:
        """One call for these IDs. When an unknown ID made the API refuse the whole call, the
        IDs it named are not_found and the others are asked one by one (bounded by the batch)."""
        answer = await self._call(ids)
        if not answer.refused or len(ids) == 1:
            return answer.resolve(ids)
        statuses = [TaskStatus(t, TaskState.NOT_FOUND, "") for t in ids if t in answer.unknown]
        codes = list(answer.codes)
        omitted: list[str] = []
        for task_id in [t for t in ids if t not in answer.unknown]:
            single = (await self._call([task_id])).resolve([task_id])
            statuses.extend(single.statuses)
            codes.extend(single.codes)
            omitted.extend(single.omitted)
        return _Resolved(statuses, tuple(codes), omitted)

    async def _call(self, ids: Sequence[str]) -> _Answer:
        query = Element("query")
        for tag, value in (
            ("userid", self._userid),
            ("userkey", self._userkey),
            ("action", "GetStatus"),
            ("mediaid", ",".join(ids)),
            ("extended", "yes"),
        ):
            SubElement(query, tag).text = value
        form = {"xml": '<?xml version="1.0"?>\n' + tostring(query, encoding="unicode")}
        return await self._http.call("POST", self._url, _parse_answer, data=form)


# -- parse ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """One call's media statuses, the IDs its errors named as unknown, and its error codes."""

    statuses: Mapping[str, TaskStatus]
    codes: tuple[str, ...] = ()
    unknown: frozenset[str] = frozenset()
    refused: bool = False  # an unknown media ID and no media at all: the call was refused

    def resolve(self, ids: Sequence[str]) -> _Resolved:
        """Statuses of these IDs: what the API reported, not_found where an error named the ID,
        and the rest omitted."""
        unknown = set(ids) if self.refused and len(ids) == 1 else self.unknown  # a lone media refused
        statuses = [
            self.statuses.get(t) or TaskStatus(t, TaskState.NOT_FOUND, "")
            for t in ids
            if t in self.statuses or t in unknown
        ]
        return _Resolved(statuses, self.codes, [t for t in ids if t not in self.statuses and t not in unknown])


@dataclass(frozen=True, slots=True)
class _Resolved:
    """Statuses of the IDs asked for, the error codes that came along, and the IDs left out."""

    statuses: list[TaskStatus]
    codes: tuple[str, ...]
    omitted: list[str]


def _parse_answer(response: HttpResponse) -> _Answer:
    """A GetStatus answer: one media as fields of <response>, several as <job> elements."""
    response.raise_for_status()  # the API answers its own errors with HTTP 200
    root = response.xml()
    if root.tag != "response":
        raise BadResponse(f"expected <response> from {response.where}, got <{root.tag[:40]}>")
    texts = [_clean(e.text or "") for e in root.findall("errors/error")]
    codes = tuple(_api_code(t) for t in texts)
    jobs = root.findall("job") or ([root] if root.find("id") is not None else [])
    statuses = {s.task_id: s for s in map(_status, jobs)}
    # Errors that concern the whole call fail it; other unknown texts beside media that did
    # parse (an expired media worded differently) are counted and the media kept.
    fatal = [c for c in codes if c in CALL_ERRORS or (c == OTHER_CODE and not statuses)]
    if fatal:
        raise _api_error(fatal, texts, response.where)
    if not statuses and not codes:  # not a reason to call every media of the batch not_found
        raise BadResponse(f"no media and no error in the GetStatus answer from {response.where}")
    named = [t for t, c in zip(texts, codes, strict=True) if c == "wrong_mediaid"]
    unknown = frozenset(word for t in named for word in re.findall(r"[\w-]+", t))
    return _Answer(statuses, codes, unknown, refused=bool(codes) and not statuses)


def _status(job: Element) -> TaskStatus:
    task_id = _text(job, "id")
    if not task_id:
        raise BadResponse("a media without an <id> in the GetStatus answer")
    raw = _text(job, "status")
    state = STATES.get(raw, TaskState.PENDING)
    failed = [
        _clean(s[5:].strip(" ()"))
        for f in job.findall("format")
        for s in _texts(f, "destination_status")
        if s.startswith("Error")
    ]
    if failed and state is not TaskState.NOT_FOUND:
        state = TaskState.ERROR  # a media whose output did not land is a failed upload
    description = _clean(_text(job, "description"))
    details = [description] if description else []
    progress = _number(job, "progress")
    return TaskStatus(
        task_id=task_id,
        state=state,
        provider_status=raw,
        fault_code=_fault(raw, failed, description) if state is TaskState.ERROR else "",
        fault_message="; ".join(details + [f"destination: {f}" for f in failed]),
        progress=None if progress is None else max(0.0, min(1.0, progress / 100)),
        eta_seconds=_number(job, "time_left") if state is TaskState.PENDING else None,
        created=_time(job, "created") or _time(job, "started"),
        finished=_time(job, "finished"),
        tallies=tuple(Tally("destination_errors", 1, _reason(f)) for f in failed),
    )


def _text(element: Element, tag: str) -> str:
    return (element.findtext(tag) or "").strip()


def _texts(element: Element, tag: str) -> list[str]:
    return [(e.text or "").strip() for e in element.findall(tag)]


def _number(element: Element, tag: str) -> float | None:
    """A number sent as a string ("50", "100.0"); absent or unreadable is None, never a crash."""
    try:
        return float(_text(element, tag))
    except ValueError:
        return None


def _time(element: Element, tag: str) -> float | None:
    """A UTC `YYYY-MM-DD HH:MM:SS` as unix seconds; the zero date and anything unreadable are None."""
    try:
        return datetime.strptime(_text(element, tag), TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _clean(text: str) -> str:
    """An API text fit for a message: no URLs (they may carry credentials), no secrets, bounded."""
    return redact(URL.sub("<url>", " ".join(text.split())))[:TEXT_CAP]


def _fault(raw: str, failed: Sequence[str], description: str) -> str:
    if raw == "Stopped":
        return "stopped"
    if failed:
        return "destination_error"
    return "download_error" if DOWNLOAD_FAULT.search(description) else "processing_error"


def _reason(text: str) -> str:
    return next((reason for reason, pattern in DESTINATION_REASONS if pattern.search(text)), OTHER_CODE)


def _api_code(text: str) -> str:
    return next((code for code, pattern in API_ERRORS if pattern.search(text)), OTHER_CODE)


def _api_error(codes: Sequence[str], texts: Sequence[str], where: str) -> ProviderError:
    """The call's error: the most telling of its codes (auth, then throttling, then the rest)."""
    code = next((c for c in (*ERRORS.auth, *ERRORS.throttling, *ERRORS.retryable) if c in codes), codes[0])
    return api_error(ERRORS, code, f"API error from {where}: {'; '.join(texts)[:TEXT_CAP]}")
