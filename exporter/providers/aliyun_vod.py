"""Alibaba Cloud ApsaraVideo VOD (API 2017-03-21): GetURLUploadInfos, RPC style, signature v1.

Sections, in the order every provider module keeps: config, request, parse, status map.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from exporter.core.classify import api_error
from exporter.core.errors import BadResponse, ProviderError
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.model import FetchResult, Tally, TaskState, TaskStatus
from exporter.core.provider import Account, AccountField, CounterSpec, ErrorCodes, IdSyntax, Vocabulary

# -- config -----------------------------------------------------------------------------

API_VERSION = "2017-03-21"
ACTION = "GetURLUploadInfos"
IDS_PER_CALL = 10  # the API's cap of JobIds or UploadURLs per call
TRACK_JOB_IDS, TRACK_UPLOAD_URLS = "job_ids", "upload_urls"
UPLOADED_BYTES = "uploaded_bytes"
# Documented as yyyy-MM-ddTHH:mm:ssZ (UTC), but a documented example has "2021-11-26 21:47:37".
TIME_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S")
SIGNED_TEXT = re.compile(r"[\s:]*(?:server )?string to sign", re.IGNORECASE)
ID_SYNTAX = {
    TRACK_JOB_IDS: IdSyntax(re.compile(r"[A-Za-z0-9_-]{1,64}"), "a JobId (letters, digits, '_' or '-')"),
    TRACK_UPLOAD_URLS: IdSyntax(re.compile(r"https?://[^\x00-\x1f\x7f]{1,2040}"), "an http(s) source URL"),
}


# -- status map -------------------------------------------------------------------------

# Status values of URL upload jobs are mostly undocumented: SUCCESS and Normal are seen in
# examples and callbacks say success/fail. Anything containing FAIL is a failure; the
# rest is in progress, and values outside this set are exported as "other".
DONE_STATUSES = frozenset({"SUCCESS", "NORMAL"})
KNOWN_STATUSES = frozenset(
    {"SUCCESS", "success", "Normal", "FAIL", "fail", "UploadFail", "PENDING", "PROCESSING", "DOWNLOADING", "UPLOADING"}
)

CLOCK_HINT = "the request time is over 15 minutes off the server's: synchronise this host's clock"
ERRORS = ErrorCodes(
    auth={
        "SignatureDoesNotMatch": "the signature was refused: check access_key_secret belongs to access_key_id",
        "IncompleteSignature": "the signature was refused: check access_key_secret belongs to access_key_id",
        "InvalidAccessKeyId.NotFound": "the AccessKey ID does not exist: check access_key_id",
        "InvalidAccessKeyId.Inactive": "the AccessKey is disabled: enable it in the RAM console or use another",
        "Forbidden.AccessKeyDisabled": "the AccessKey is disabled: enable it in the RAM console or use another",
        "Forbidden.RAM": "the RAM user may not call vod:GetURLUploadInfos: grant it, e.g. AliyunVODReadOnlyAccess",
        "Forbidden": "the account may not call vod:GetURLUploadInfos: check the RAM policy and that VOD is activated",
    },
    throttling=dict.fromkeys(("Throttling", "Throttling.User", "Throttling.Api", "Throttling.Resource")),
    retryable=dict.fromkeys(("InternalError", "ServiceUnavailable", "SignatureNonceUsed")),
    rejected={
        "IllegalTimestamp": CLOCK_HINT,
        "InvalidTimeStamp.Expired": CLOCK_HINT,
        **dict.fromkeys(
            (
                "MissingParameter",
                "InvalidParameter",
                "InvalidAction",
                "InvalidVersion",
                "InvalidTimeStamp.Format",
                "UnsupportedHTTPMethod",
            ),
            "",
        ),
    },
)


def _state(raw: str) -> TaskState:
    upper = raw.upper()
    if upper in DONE_STATUSES:
        return TaskState.DONE
    if "FAIL" in upper:
        return TaskState.ERROR
    return TaskState.PENDING  # PENDING, PROCESSING, DOWNLOADING, UPLOADING and the unknown


class AliyunVod:
    """Statuses of URL upload jobs (UploadMediaByURL), by JobId or by source URL."""

    name: ClassVar[str] = "aliyun_vod"
    batch_size: ClassVar[int] = IDS_PER_CALL
    # GetURLUploadInfos is served only in cn-shanghai and ap-southeast-1 (vod.ap-southeast-1.aliyuncs.com).
    default_endpoint: ClassVar[str] = "https://vod.cn-shanghai.aliyuncs.com/"
    default_rate_limit: ClassVar[float] = 100.0  # the API's limit per account (UID), all keys together
    account_fields: ClassVar[Sequence[AccountField]] = (
        AccountField("access_key_id", "secret", "the AccessKey ID", required=True),
        AccountField("access_key_secret", "secret", "the AccessKey secret", required=True),
        AccountField(
            "track",
            "str",
            "what the task IDs are: JobIds or the source URLs given to UploadMediaByURL",
            default=TRACK_JOB_IDS,
            choices=(TRACK_JOB_IDS, TRACK_UPLOAD_URLS),
        ),
    )
    vocabulary: ClassVar[Vocabulary] = Vocabulary(
        statuses=KNOWN_STATUSES,
        # URLInvalidError is documented; other job error codes are not, so they show as "other".
        fault_codes=frozenset({"URLInvalidError"}),
        api_error_codes=ERRORS.known,
    )
    errors: ClassVar[ErrorCodes] = ERRORS
    counters: ClassVar[Sequence[CounterSpec]] = (
        CounterSpec(
            UPLOADED_BYTES,
            "Bytes of source files of URL upload jobs seen finishing successfully (FileSize), counted once per job.",
            title="Uploaded bytes",
            unit="Bps",
        ),
    )

    max_body_bytes: ClassVar[int] = 1024 * 1024  # 10 jobs

    @classmethod
    def task_id_syntax(cls, account: Account) -> IdSyntax:
        return ID_SYNTAX.get(account.text("track"), ID_SYNTAX[TRACK_JOB_IDS])

    def __init__(self, account: Account, http: HttpClient) -> None:
        self._http = http
        self._url = account.endpoint
        self._key_id = account.secret("access_key_id")
        self._key_secret = account.secret("access_key_secret")
        self._by_url = account.text("track") == TRACK_UPLOAD_URLS

    async def fetch(self, task_ids: Sequence[str]) -> FetchResult:
        """Statuses of these jobs; IDs in NonExists are not_found, IDs not answered at all are omitted."""
        query = signed_query(self._params(task_ids), self._key_secret)
        body = await self._http.call("GET", f"{self._url}?{query}", _parse_body)
        return _result(body, task_ids, self._by_url)

    # -- request ------------------------------------------------------------------------

    def _params(self, task_ids: Sequence[str]) -> dict[str, str]:
        if self._by_url:
            # Each URL is encoded on its own first, so a comma inside a URL cannot split it.
            selection = {"UploadURLs": ",".join(percent_encode(u) for u in task_ids)}
        else:
            selection = {"JobIds": ",".join(task_ids)}
        return {
            "Action": ACTION,
            "Version": API_VERSION,
            "Format": "JSON",
            "AccessKeyId": self._key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": str(uuid.uuid4()),  # a fresh one per request, retries included
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **selection,
        }


def percent_encode(text: str) -> str:
    """RFC 3986 over UTF-8 with upper-case hex: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return urllib.parse.quote(text, safe="")


def string_to_sign(params: Mapping[str, str], method: str = "GET") -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def signature(params: Mapping[str, str], secret: str, method: str = "GET") -> str:
    """Signature v1.0: Base64(HMAC-SHA1(key = secret + "&", StringToSign))."""
    mac = hmac.new(f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def signed_query(params: Mapping[str, str], secret: str) -> str:
    """The query string with its Signature, every name and value percent-encoded."""
    signed = {**params, "Signature": signature(params, secret)}
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in signed.items())


# -- parse ------------------------------------------------------------------------------


def _parse_body(response: HttpResponse) -> Mapping[str, Any]:
    """The JSON body; an error body is read before the HTTP status so the API's Code is kept."""
    try:
        body = response.json()
    except BadResponse:
        response.raise_for_status()  # a proxy's HTML error page: judge by the status alone
        raise
    if isinstance(body, dict) and body.get("Code") and (response.status >= 300 or "URLUploadInfoList" not in body):
        raise _api_error(body, response)
    response.raise_for_status()
    if not isinstance(body, dict):
        raise BadResponse(f"expected a JSON object from {response.where}")
    return body


def _result(body: Mapping[str, Any], task_ids: Sequence[str], by_url: bool) -> FetchResult:
    asked = _aliases(task_ids, by_url)
    found: dict[str, TaskStatus] = {}
    for item in body.get("URLUploadInfoList") or []:
        task_id = asked.get(str(item.get("UploadURL" if by_url else "JobId") or ""))
        if task_id is None:
            continue
        status = _status(task_id, item)
        earlier = found.get(task_id)
        # One URL uploaded several times has several jobs: the newest one speaks for it.
        if earlier is None or (status.created or 0.0) >= (earlier.created or 0.0):
            found[task_id] = status
    missing = {asked[i] for i in _non_exists(body.get("NonExists")) if i in asked}
    statuses = [s for t, s in found.items() if t not in missing]
    statuses += [TaskStatus(t, TaskState.NOT_FOUND, "") for t in task_ids if t in missing]
    return FetchResult(statuses, omitted=[t for t in task_ids if t not in missing and t not in found])


def _aliases(task_ids: Sequence[str], by_url: bool) -> dict[str, str]:
    """Every form the API may echo an ID in, to the ID as tracked (URLs come back encoded or not)."""
    aliases: dict[str, str] = {}
    for task_id in task_ids:
        forms = (task_id, percent_encode(task_id), urllib.parse.unquote(task_id)) if by_url else (task_id,)
        for form in forms:
            aliases.setdefault(form, task_id)
    return aliases


def _non_exists(value: Any) -> Iterable[str]:
    """NonExists entries; documented examples also show a list stringified inside the list."""
    for entry in value if isinstance(value, list) else [value] if value else []:
        text = str(entry).strip()
        if not (text.startswith("[") and text.endswith("]")):
            yield text
            continue
        try:
            inner = json.loads(text)  # ["a", "b"]
        except ValueError:  # ['a', 'b']: a Python repr, not JSON
            inner = [part.strip().strip("'\"") for part in text[1:-1].split(",")]
        yield from (str(i).strip() for i in (inner if isinstance(inner, list) else [inner]) if str(i).strip())


def _status(task_id: str, item: Mapping[str, Any]) -> TaskStatus:
    raw = str(item.get("Status") or "")
    state = _state(raw)
    failed = state is TaskState.ERROR
    size = _number(item.get("FileSize")) if state is TaskState.DONE else None
    return TaskStatus(
        task_id=task_id,
        state=state,
        provider_status=raw,
        fault_code=str(item.get("ErrorCode") or "") if failed else "",
        fault_message=str(item.get("ErrorMessage") or "") if failed else "",
        created=_time(item.get("CreationTime")),
        finished=_time(item.get("CompleteTime")) if state.final else None,
        tallies=(Tally(UPLOADED_BYTES, size),) if size else (),
    )


def _time(value: Any) -> float | None:
    """Unix seconds of a UTC time in either documented form; None when absent or unreadable."""
    for fmt in TIME_FORMATS:
        try:
            parsed = datetime.datetime.strptime(str(value).strip(), fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=datetime.UTC).timestamp()
    return None


def _number(value: Any) -> float | None:
    """FileSize is a string of bytes; anything unreadable or negative counts as unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _api_error(body: Mapping[str, Any], response: HttpResponse) -> ProviderError:
    code = str(body.get("Code"))
    # A SignatureDoesNotMatch message quotes the server's string to sign, AccessKeyId included.
    text = SIGNED_TEXT.split(str(body.get("Message") or ""), maxsplit=1)[0].strip()[:200]
    message = f"API error {code} (HTTP {response.status}) from {response.where}: {text}"
    return api_error(ERRORS, code, message, retry_after=response.retry_after(), server_error=response.status >= 500)
