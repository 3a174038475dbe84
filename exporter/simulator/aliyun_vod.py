"""Alibaba Cloud ApsaraVideo VOD, GetURLUploadInfos (RPC style, signature v1), as a small aiohttp app.

Same sections as every simulator: protocol constants, request checks, answers, demo.
The signature is checked by code written here from Alibaba Cloud's description, so a
client that misreads it gets SignatureDoesNotMatch instead of sharing the misreading.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import os
import time
import urllib.parse
import uuid
import zlib
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator.base import SimTask, Simulator, json_response

# -- protocol constants -----------------------------------------------------------------

VERSION = "2017-03-21"
ACTION = "GetURLUploadInfos"
IDS_CAP = 10
RATE_CAP = 100  # calls per wall-clock second per account (UID): all its AccessKeys together
CLOCK_SKEW_SECONDS = 15 * 60
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
REQUIRED = (
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
)
PER_SECOND_KEPT = 3600  # seconds of call counts kept for tests and the curious
ERRORS: dict[str, tuple[int, str]] = {
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "MissingParameter": (
        400,
        'The input parameter "{}" that is mandatory for processing this request is not supplied.',
    ),
    "InvalidParameter": (400, 'The specified parameter "{}" is not valid.'),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "IllegalTimestamp": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (
        403,
        "Specified signature is not matched with our calculation. server string to sign is:{}",
    ),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "Forbidden.RAM": (
        403,
        "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    ),
    "InvalidAction": (400, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "UnsupportedHTTPMethod": (400, "This http method is not supported."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}


class Refused(Exception):
    """A request check failed: answer with this API error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class AliyunVodSimulator(Simulator):
    """Answers GetURLUploadInfos for URL upload jobs created with `add_task`/`add_random_tasks`.

    Task extras: `url` (the source URL; one is made up otherwise) and `legacy` (answer in the
    older documented shape: Status Normal, ErrorCode "200", times as yyyy-MM-dd HH:mm:ss).
    """

    name: ClassVar[str] = "aliyun_vod"
    path: ClassVar[str] = "/"
    faults: ClassVar[tuple[tuple[str, str], ...]] = (
        ("URLInvalidError", "download video failed by the url, please check it"),
        ("URLInvalidError", "the url is not reachable, please check it"),
    )
    oversized_prefix: ClassVar[bytes] = b'{"RequestId": "25818875-5F78-4A13-BEF6-D7393642CA58", "URLUploadInfoList": ['
    throttle_code: ClassVar[str] = "Throttling.User"
    auth_code: ClassVar[str] = "SignatureDoesNotMatch"

    def __init__(
        self,
        key_id: str = "LTAI5tSimAccessKeyId",
        key_secret: str = "sim-aliyun-access-key-secret",
        *,
        rate_cap: int = RATE_CAP,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.key_id, self.key_secret = key_id, key_secret
        self.keys = {key_id: key_secret}  # AccessKeys of the one simulated account
        self.rate_cap = rate_cap
        self.per_second: dict[int, int] = {}  # calls that landed, by wall-clock second
        self.throttled = 0
        self.nonces: dict[str, float] = {}
        self.nonexists_style = "list"  # or "python" / "json": a list stringified inside the list

    def new_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    # -- request checks ---------------------------------------------------------------

    def error_response(self, code: str, detail: str = "") -> web.Response:
        status, text = ERRORS.get(code, (400, "The request has failed."))
        return json_response(
            {
                "RequestId": self.request_id(),
                "HostId": "vod.cn-shanghai.aliyuncs.com",
                "Code": code,
                "Message": text.format(detail),
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=vod",
            },
            status=status,
        )

    def auth_response(self) -> web.Response:
        """As the gateway words it: the server's string to sign, AccessKeyId and all."""
        params = {"AccessKeyId": self.key_id, "Action": ACTION, "Format": "JSON", "Version": VERSION}
        to_sign, _ = server_signature("GET", params, self.key_secret)
        return self.error_response(self.auth_code, to_sign)

    def flow_control(self) -> web.Response | None:
        # Flow control counts every call that lands, by the real clock: the task clock may be fake.
        second = int(time.time())
        self.per_second[second] = self.per_second.get(second, 0) + 1
        while len(self.per_second) > PER_SECOND_KEPT:
            del self.per_second[next(iter(self.per_second))]
        if self.per_second[second] > self.rate_cap:
            self.throttled += 1
            return self.error_response("Throttling.User")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.raw_query_string
        try:
            if request.method != "GET":
                raise Refused("UnsupportedHTTPMethod")
            params = self.authenticate(request.method, parse_query(query))
            wanted, by_url = self.selection(params)
        except Refused as refused:
            return self.error_response(refused.code, refused.detail)
        self.record(wanted, by_url=by_url, query=query, nonce=params["SignatureNonce"])
        return self.answer(wanted, by_url)

    def authenticate(self, method: str, params: dict[str, str]) -> dict[str, str]:
        """The checks of the API gateway, in its order: parameters, key, time, signature, nonce."""
        for name in REQUIRED:
            if not params.get(name):
                raise Refused("MissingParameter", name)
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise Refused("IncompleteSignature")
        secret = self.keys.get(params["AccessKeyId"])
        if secret is None:
            raise Refused("InvalidAccessKeyId.NotFound")
        try:
            stamp = calendar.timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            raise Refused("InvalidTimeStamp.Format") from None
        now = self.clock()
        if abs(now - stamp) > CLOCK_SKEW_SECONDS:
            raise Refused("IllegalTimestamp")
        to_sign, expected = server_signature(method, params, secret)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise Refused("SignatureDoesNotMatch", to_sign)
        self._use_nonce(params["SignatureNonce"], now)
        if params["Action"] != ACTION:
            raise Refused("InvalidAction")
        if params["Version"] != VERSION:
            raise Refused("InvalidVersion")
        if params["Format"].upper() != "JSON":
            raise Refused("InvalidParameter", "Format")
        return params

    def _use_nonce(self, nonce: str, now: float) -> None:
        if nonce in self.nonces:
            raise Refused("SignatureNonceUsed")
        self.nonces[nonce] = now
        # A nonce older than the time window can no longer come with a valid timestamp.
        while self.nonces and next(iter(self.nonces.values())) < now - 2 * CLOCK_SKEW_SECONDS:
            del self.nonces[next(iter(self.nonces))]

    @staticmethod
    def selection(params: dict[str, str]) -> tuple[list[str], bool]:
        """JobIds, or else UploadURLs (each URL-encoded on its own, then comma-joined)."""
        by_url = not params.get("JobIds")
        name = "UploadURLs" if by_url else "JobIds"
        parts = [p.strip() for p in params.get(name, "").split(",") if p.strip()]
        if not parts:
            raise Refused("MissingParameter", "JobIds")
        if len(parts) > IDS_CAP:
            raise Refused("InvalidParameter", name)
        if by_url and any(c in part for part in parts for c in ":/?&= "):
            raise Refused("InvalidParameter", name)  # not URL-encoded
        return ([urllib.parse.unquote(p) for p in parts] if by_url else parts), by_url

    # -- answers ----------------------------------------------------------------------

    def answer(self, wanted: list[str], by_url: bool) -> web.Response:
        now = self.clock()
        infos: list[dict[str, Any]] = []
        missing: list[str] = []
        left_out = self.left_out(wanted)
        for key in [k for k in wanted if k not in left_out]:
            # A URL uploaded several times has several jobs (a scan: URL mode is for small sets).
            jobs = (
                [t for t in self.tasks.values() if self.url_of(t) == key]
                if by_url
                else ([self.tasks[key]] if key in self.tasks else [])
            )
            infos.extend(self.info(t, now) for t in jobs)
            if not jobs:
                missing.append(key)
        return json_response(
            {"RequestId": self.request_id(), "NonExists": self.non_exists(missing), "URLUploadInfoList": infos}
        )

    def non_exists(self, missing: list[str]) -> list[str]:
        if not missing or self.nonexists_style == "list":
            return missing
        if self.nonexists_style == "json":
            return [json.dumps(missing)]
        return [repr(missing)]  # "['a', 'b']", as in one documented example

    def info(self, task: SimTask, now: float) -> dict[str, Any]:
        legacy = bool(task.extra.get("legacy"))
        stamp = "%Y-%m-%d %H:%M:%S" if legacy else "%Y-%m-%dT%H:%M:%SZ"
        item: dict[str, Any] = {
            "JobId": task.task_id,
            "UploadURL": self.url_of(task),
            "UserData": json.dumps({"MessageCallback": {"CallbackURL": ""}, "Extend": {"batch": "demo"}}),
            "CreationTime": time.strftime(stamp, time.gmtime(task.created)),
            "Status": in_progress_status(task.progress(now)),
            "MediaId": "",
            "FileSize": "",
            "ErrorCode": "",
            "ErrorMessage": "",
            "CompleteTime": "",
        }
        if not task.finished(now):
            return item
        item["CompleteTime"] = time.strftime(stamp, time.gmtime(task.finish_at))
        if task.fails:
            item["Status"] = "FAIL"
            item["ErrorCode"], item["ErrorMessage"] = task.fault
            return item
        item.update(
            Status="Normal" if legacy else "SUCCESS", MediaId=f"m{task.task_id[:31]}", FileSize=str(self.size_of(task))
        )
        if legacy:
            item.update(ErrorCode="200", ErrorMessage="Success")
        return item

    @staticmethod
    def url_of(task: SimTask) -> str:
        return str(task.extra.get("url") or f"https://media.example.com/videos/{task.task_id}.mp4")

    @staticmethod
    def size_of(task: SimTask) -> int:
        """A stable file size per job, 1 MiB to about 1 GiB."""
        return int(task.extra.get("size") or (zlib.crc32(task.task_id.encode()) % (1 << 30)) + (1 << 20))

    def request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()

    # -- demo -------------------------------------------------------------------------

    def demo_account(self) -> dict[str, Any]:
        os.environ.setdefault("DEMO_ALIYUN_VOD_ACCESS_KEY_ID", self.key_id)
        os.environ.setdefault("DEMO_ALIYUN_VOD_ACCESS_KEY_SECRET", self.key_secret)
        return {
            "provider": self.name,
            "endpoint": self.url,
            "access_key_id": {"env": "DEMO_ALIYUN_VOD_ACCESS_KEY_ID"},
            "access_key_secret": {"env": "DEMO_ALIYUN_VOD_ACCESS_KEY_SECRET"},
        }


def in_progress_status(progress: float) -> str:
    if progress < 0.15:
        return "PENDING"
    if progress < 0.5:
        return "DOWNLOADING"
    return "UPLOADING" if progress < 0.85 else "PROCESSING"


def parse_query(raw: str) -> dict[str, str]:
    """A query string as RFC 3986 decodes it ('+' stays '+'); a repeated name is refused."""
    params: dict[str, str] = {}
    for part in filter(None, raw.split("&")):
        name, _, value = part.partition("=")
        try:
            name, value = urllib.parse.unquote(name, errors="strict"), urllib.parse.unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise Refused("InvalidParameter", "query") from None
        if name in params:
            raise Refused("InvalidParameter", name)
        params[name] = value
    return params


def server_signature(method: str, params: dict[str, str], secret: str) -> tuple[str, str]:
    """(StringToSign, Signature) as the server computes them, from every parameter but Signature."""

    def encode(text: str) -> str:
        return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))

    pairs = sorted((encode(k), encode(v)) for k, v in params.items() if k != "Signature")
    to_sign = method + "&" + encode("/") + "&" + encode("&".join(k + "=" + v for k, v in pairs))
    digest = hmac.new((secret + "&").encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return to_sign, base64.b64encode(digest).decode("ascii")
