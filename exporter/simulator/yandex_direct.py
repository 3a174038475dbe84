"""Yandex Direct API v4 Live, AdImage / CheckUploadStatus, as a small aiohttp app.

Same sections as every simulator: protocol constants, request checks, answers, demo.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator.base import SimTask, Simulator, json_response

# -- protocol constants -----------------------------------------------------------------

PAGE_CAP = 10_000
LOGINS_CAP = 10
ERRORS = {
    "52": "Authorization server temporarily unavailable",
    "53": "Authorization error",
    "54": "No rights",
    "152": "Not enough units",
    "506": "Exceeded limit on number of connections",
    "1000": "Server temporarily unavailable",
    "1002": "Operation error",
    "3001": "No access to method",
    "71": "Incorrect parameters",
}


class YandexDirectSimulator(Simulator):
    """Answers CheckUploadStatus for tasks created with `add_task`/`add_random_tasks`."""

    name: ClassVar[str] = "yandex_direct"
    path: ClassVar[str] = "/live/v4/json/"
    faults: ClassVar[tuple[tuple[str, str], ...]] = (
        ("5004", "Invalid image format"),
        ("5005", "Image is too small"),
        ("6000", "Source URL is unavailable"),
        ("8800", "Image not found at source URL"),
    )
    oversized_prefix: ClassVar[bytes] = b'{"data": {"AdImageUploads": ['
    throttle_code: ClassVar[str] = "506"
    auth_code: ClassVar[str] = "53"

    def __init__(self, token: str = "sim-yandex-token", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token

    # -- request checks ---------------------------------------------------------------

    def error_response(self, code: str) -> web.Response:
        return json_response({"error_code": int(code), "error_str": ERRORS.get(code, "Error"), "error_detail": ""})

    def auth_response(self) -> web.Response:
        return json_response({"error_code": 53, "error_str": ERRORS["53"], "error_detail": "Invalid OAuth token"})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        try:
            body = await request.json()
            param = body["param"]
        except (ValueError, KeyError, TypeError):
            return self.error_response("71")
        if body.get("token") != self.token:
            return self.error_response("53")
        if body.get("method") != "AdImage" or param.get("Action") != "CheckUploadStatus":
            return self.error_response("71")
        criteria = param.get("SelectionCriteria") or {}
        logins = criteria.get("Logins") or []
        if len(logins) > LOGINS_CAP:
            return json_response(
                {"error_code": 71, "error_str": ERRORS["71"], "error_detail": f"no more than {LOGINS_CAP} logins"}
            )
        ids = [str(i) for i in criteria.get("AdImageUploadTaskIDS") or []]
        limit = min(int(criteria.get("Limit", PAGE_CAP)), PAGE_CAP)
        offset = int(criteria.get("Offset", 0))
        self.record(ids, logins=tuple(logins), limit=limit, offset=offset)
        return self.answer(ids, logins, limit, offset)

    # -- answers ----------------------------------------------------------------------

    def answer(self, ids: list[str], logins: list[str], limit: int, offset: int) -> web.Response:
        selected = [self.tasks[i] for i in ids if i in self.tasks] if ids else list(self.tasks.values())
        if logins:
            selected = [t for t in selected if t.owner in logins]
        left_out = self.left_out([t.task_id for t in selected])
        selected = [t for t in selected if t.task_id not in left_out]
        now = self.clock()
        page = [self.upload(t, now) for t in selected[offset : offset + limit]]
        return json_response({"data": {"AdImageUploads": page, "TotalObjectsCount": len(selected)}})

    @staticmethod
    def upload(task: SimTask, now: float) -> dict[str, Any]:
        item: dict[str, Any] = {
            "Login": task.owner,
            "AdImageUploadTaskID": int(task.task_id),
            "SourceURL": f"https://images.example.com/{task.task_id}.jpg",
            "Name": f"banner-{task.task_id}",
            "Status": "Pending",
        }
        if task.finished(now):
            if task.fails:
                code, message = task.fault
                item["Status"] = "Error"
                item["Error"] = {"FaultCode": int(code), "FaultString": message, "FaultDetail": ""}
            else:
                item["Status"] = "Done"
                item["AdImageHash"] = f"hash{task.task_id}"
                item["AdImageURL"] = f"https://avatars.example.net/{task.task_id}/orig"
        return item

    # -- demo -------------------------------------------------------------------------

    def demo_account(self) -> dict[str, Any]:
        os.environ.setdefault("DEMO_YANDEX_DIRECT_TOKEN", self.token)
        return {"provider": self.name, "endpoint": self.url, "token": {"env": "DEMO_YANDEX_DIRECT_TOKEN"}}

    def demo_tasks(self, ids_file: str) -> dict[str, Any]:
        return {"discover": True}
