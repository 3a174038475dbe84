"""ipernity API, upload.checkTickets, as a small aiohttp app.

Same sections as every simulator: protocol constants, request checks, answers, demo.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator.base import SimTask, Simulator, json_response

# -- protocol constants -----------------------------------------------------------------

METHOD = "upload.checkTickets"
TICKETS_CAP = 50
ERRORS = {
    "1": "Ticket not found",
    "100": "API key is missing",
    "101": "Invalid API key",
    "102": "Bad format",
    "103": "Bad method",
    "104": "Signature is missing",
    "105": "Invalid signature",
    "106": "Token is missing",
    "107": "Invalid token",
    "108": "Account closed",
    "109": "Blocklisted",
    "110": "Insufficient permissions",
    "111": "IP address not allowed",
    "112": "Application quota reached",
    "113": "Rate limit exceeded",
    "120": "POST required",
    "121": "Bad SOAP request",
    "122": "Bad XML-RPC request",
    "500": "Service error",
    "501": "Maintenance mode",
    "503": "Service unavailable",
}
TOO_MANY = "102"  # the doc names no code for more than 50 tickets: refused as a malformed request
REPLACED_EVERY = 4  # every so many tickets comes from upload.replace: "<ticket>-<suffix>"


class IpernitySimulator(Simulator):
    """Answers upload.checkTickets for tickets created with `add_task`/`add_random_tasks`.

    With an `auth_token` (say "" for none) every call must carry it. A ticket whose upload
    fails turns invalid when it finishes. Unknown tickets are invalid, or with
    `unknown_is_error` make the whole call answer error 1 (the real rule is not documented).
    `single_as_object` renders a lone ticket as an object rather than a list.
    """

    name: ClassVar[str] = "ipernity"
    path: ClassVar[str] = "/api/"
    route: ClassVar[str] = "{method}/{format}"
    faults: ClassVar[tuple[tuple[str, str], ...]] = (("", "the upload could not be processed"),)
    oversized_prefix: ClassVar[bytes] = b'{"api": {"status": "ok"}, "tickets": {"ticket": ['
    throttle_code: ClassVar[str] = "113"
    auth_code: ClassVar[str] = "107"

    def __init__(
        self,
        api_key: str = "sim-ipernity-key",
        api_secret: str = "sim-ipernity-secret",
        auth_token: str = "sim-ipernity-token",
        *,
        unknown_is_error: bool = False,
        single_as_object: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.api_secret = api_secret
        self.auth_token = auth_token
        self.unknown_is_error = unknown_is_error
        self.single_as_object = single_as_object
        self._next_id = 12_345_000

    def new_id(self) -> str:
        ticket = super().new_id()
        if self._next_id % REPLACED_EVERY == 0:
            return f"{ticket}-{self.rng.randint(10_000, 99_999)}"
        return ticket

    # -- request checks ---------------------------------------------------------------

    def error_response(self, code: str) -> web.Response:
        return json_response({"api": {"status": "error", "code": int(code), "message": ERRORS.get(code, "Error")}})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        refused = self.refusal(request.match_info["method"], request.match_info["format"], params)
        if refused is not None:
            return self.error_response(refused)
        tickets = [t.strip() for t in params.get("tickets", "").split(",") if t.strip()]
        if len(tickets) > TICKETS_CAP:
            return json_response(
                {"api": {"status": "error", "code": int(TOO_MANY), "message": f"no more than {TICKETS_CAP} tickets"}}
            )
        if not tickets or (self.unknown_is_error and any(t not in self.tasks for t in tickets)):
            return self.error_response("1")
        self.record(tickets, api_sig=params["api_sig"])
        return self.answer(tickets)

    def refusal(self, method: str, fmt: str, params: dict[str, str]) -> str | None:
        """The error code of a request the API refuses before looking at tickets, or None."""
        if method != METHOD:
            return "103"
        if fmt != "json":
            return "102"
        if "api_key" not in params:
            return "100"
        if params["api_key"] != self.api_key:
            return "101"
        if "api_sig" not in params:
            return "104"
        if params["api_sig"] != self.signature(params, method):
            return "105"
        if self.auth_token and params.get("auth_token") != self.auth_token:
            return "107" if "auth_token" in params else "106"
        return None

    def signature(self, params: dict[str, str], method: str) -> str:
        signed = "".join(name + params[name] for name in sorted(params) if name not in ("api_sig", "file"))
        return hashlib.md5((signed + method + self.api_secret).encode(), usedforsecurity=False).hexdigest()

    # -- answers ----------------------------------------------------------------------

    def answer(self, tickets: list[str]) -> web.Response:
        now = self.clock()
        left_out = self.left_out(tickets)
        items = [self.ticket(ticket, self.tasks.get(ticket), now) for ticket in tickets if ticket not in left_out]
        done = sum(item["done"] == "1" for item in items)
        invalid = sum(item["invalid"] == "1" for item in items)
        counts = {
            "count": len(items),
            "done": done,
            "invalid": invalid,
            "left": len(items) - done - invalid,
            "eta": max((int(item["eta"]) for item in items), default=0),
        }
        rendered: Any = items[0] if self.single_as_object and len(items) == 1 else items
        return json_response({"api": {"status": "ok"}, "tickets": {**counts, "ticket": rendered}})

    @staticmethod
    def ticket(ticket: str, task: SimTask | None, now: float) -> dict[str, str]:
        """One ticket as the API renders it: every attribute a string."""
        item = {"id": ticket, "done": "0", "invalid": "0", "eta": "0"}
        if task is None or (task.finished(now) and task.fails):
            item["invalid"] = "1"
        elif task.finished(now):
            item.update(done="1", doc_id=str(int(task.task_id.split("-")[0]) * 7 % 10**9))
        else:
            item["eta"] = str(math.ceil(task.finish_at - now))
        return item

    # -- demo -------------------------------------------------------------------------

    def demo_account(self) -> dict[str, Any]:
        secrets = {"api_key": self.api_key, "api_secret": self.api_secret, "auth_token": self.auth_token}
        for field, value in secrets.items():
            os.environ.setdefault(f"DEMO_IPERNITY_{field.upper()}", value)
        return {
            "provider": self.name,
            "endpoint": self.url,
            **{field: {"env": f"DEMO_IPERNITY_{field.upper()}"} for field in secrets},
        }
