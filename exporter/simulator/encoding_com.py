"""encoding.com API, the XML action GetStatus, as a small aiohttp app.

Same sections as every simulator: protocol constants, request checks, answers, demo.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar
from xml.etree.ElementTree import Element, SubElement, tostring

import defusedxml.ElementTree
from aiohttp import web

from exporter.simulator import faults as fault_modes
from exporter.simulator.base import SimTask, Simulator

# -- protocol constants -----------------------------------------------------------------

MEDIA_CAP = 100
ZERO_TIME = "0000-00-00 00:00:00"
# Media statuses in order, with the share of the task's timeline at which each starts.
STAGES: tuple[tuple[str, float], ...] = (
    ("New", 0.0),
    ("Downloading", 0.05),
    ("Ready to process", 0.2),
    ("Waiting for encoder", 0.25),
    ("Processing", 0.35),
    ("Saving", 0.85),
)
FAILS_IN = {"download": "Downloading", "processing": "Processing", "destination": "Saving"}
FORMAT_STATUS = {"Processing": "Processing", "Saving": "Saving", "Finished": "Finished"}  # else New
FTP_PASSWORD = "ftp-s3cret"  # destination URLs embed credentials, as real ones do
ERRORS = {
    "auth": "Wrong user id or key!",
    "rate_limit": "Request limit exceeded, please slow down",
    "maintenance": "The system is down for maintenance, please try again later",
    "other": "Internal error",
    "action": "Wrong action",
    "query": "Wrong XML query",
    "cap": f"At most {MEDIA_CAP} media per request",
    "extended": "Several media need extended mode",
}


class EncodingComSimulator(Simulator):
    """Answers GetStatus for media created with `add_task`/`add_random_tasks`."""

    name: ClassVar[str] = "encoding_com"
    path: ClassVar[str] = "/"
    content_type: ClassVar[str] = "application/xml"
    malformed_body: ClassVar[bytes] = b'<?xml version="1.0"?>\n<response><job><id>1001</id><status>Fini'
    oversized_prefix: ClassVar[bytes] = b'<?xml version="1.0"?>\n<response><job><id>1001</id><description>'
    fault_kinds: ClassVar[frozenset[str]] = fault_modes.COMMON_KINDS | fault_modes.XML_KINDS
    throttle_code: ClassVar[str] = "rate_limit"
    auth_code: ClassVar[str] = "auth"
    faults: ClassVar[tuple[tuple[str, str], ...]] = (
        ("download", "Download error: HTTP/1.1 404 Not Found"),
        ("download", "Download error: Could not connect to the source host"),
        ("processing", "Unsupported video codec in the source file"),
        ("destination", "Access Denied"),
        ("destination", "Connection timed out"),
        ("destination", "NoSuchBucket: The specified bucket does not exist"),
    )

    def __init__(self, userid: str = "sim-user", userkey: str = "sim-encoding-userkey", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.userid = userid
        self.userkey = userkey
        self.refuse_unknown = False  # True: an unknown media ID refuses the whole call, naming only it

    def force_status(self, task_id: str, status: str) -> None:
        """From now on the media reports this status (`Deleted`, `Stopped`, `Finished`) whatever its
        timeline; its formats still follow the timeline."""
        self.tasks[task_id].extra["status"] = status

    # -- request checks ---------------------------------------------------------------

    def error_response(self, code: str) -> web.Response:
        return self.errors([ERRORS.get(code, code)])

    def xml_fault_body(self, kind: str) -> bytes:
        """Billion laughs (entities that expand to gigabytes), or an external entity reading a local file."""
        if kind == "xml_bomb":
            entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
            dtd, value = "\n ".join(entities), "&lol9;"
        else:
            dtd, value = '<!ENTITY xxe SYSTEM "file:///etc/passwd">', "&xxe;"
        return (
            f'<?xml version="1.0"?>\n<!DOCTYPE response [\n {dtd}\n]>\n'
            f"<response><id>{value}</id><status>Finished</status></response>\n"
        ).encode()

    def errors(self, texts: list[str]) -> web.Response:
        response = Element("response")
        _errors(response, texts)
        return self.xml(response)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        form = await request.post()
        try:
            query = defusedxml.ElementTree.fromstring(str(form.get("xml", "")), forbid_dtd=True)
        except Exception:  # any parse failure is the API's "wrong query"
            return self.error_response("query")
        fields = {child.tag: (child.text or "").strip() for child in query}
        if query.tag != "query":
            return self.error_response("query")
        if fields.get("userid") != self.userid or fields.get("userkey") != self.userkey:
            return self.error_response("auth")
        if fields.get("action") != "GetStatus":
            return self.error_response("action")
        ids = [i.strip() for i in fields.get("mediaid", "").split(",") if i.strip()]
        extended = fields.get("extended") == "yes"
        if len(ids) > MEDIA_CAP:
            return self.error_response("cap")
        if len(ids) > 1 and not extended:
            return self.error_response("extended")
        self.record(ids, extended=extended)
        return self.answer(ids)

    # -- answers ----------------------------------------------------------------------

    def answer(self, ids: list[str]) -> web.Response:
        unknown = [f"Media ID {i} was not found" for i in ids if i not in self.tasks]
        if unknown and self.refuse_unknown:
            return self.errors(unknown[:1])
        response = Element("response")
        now = self.clock()
        left_out = self.left_out([i for i in ids if i in self.tasks])
        for task in [self.tasks[i] for i in ids if i in self.tasks and i not in left_out]:
            # One media: its fields right in <response>; several: a <job> each.
            self.media(response if len(ids) == 1 else SubElement(response, "job"), task, now)
        if unknown:
            _errors(response, unknown)
        return self.xml(response)

    def media(self, job: Element, task: SimTask, now: float) -> None:
        """A media moves through STAGES with its timeline; a failing one stops in its fault's stage."""
        kind = task.fault[0] if task.fails else ""
        stage, progress, share = _stage(task, now, FAILS_IN.get(kind))
        done = task.finished(now)
        status, prev = STAGES[stage][0], STAGES[stage - 1][0] if stage else ""
        if done:
            status, prev = "Error" if kind else "Finished", status
            progress, share = (progress, share) if kind else (1.0, 1.0)
        reported = str(task.extra.get("status") or status)
        span = task.finish_at - task.created
        source = f"https://media.example.com/{task.task_id}.mov"
        _fields(
            job,
            id=task.task_id,
            userid=self.userid,
            sourcefile=source,
            status=reported,
            prevstatus=prev,
            created=_time(task.created),
            started=_time(task.created + STAGES[1][1] * span) if stage else ZERO_TIME,
            finished=_time(task.finish_at) if done else ZERO_TIME,
            time_left="0" if done else f"{task.finish_at - now:.0f}",
            progress=f"{progress * 100:.1f}",
            time_left_current="0" if done else f"{(1 - share) * span * _width(stage):.0f}",
            progress_current=f"{share * 100:.0f}",
            processor="AMAZON",
        )
        if reported == "Error":
            _fields(job, description=f"{task.fault[1]} ({source})")
        formats = int(task.extra.get("formats") or 1 + ord(task.task_id[-1]) % 2)
        for n in range(1, formats + 1):
            self.output(SubElement(job, "format"), task, n, status, kind if n == formats else "")

    def output(self, fmt: Element, task: SimTask, n: int, status: str, kind: str) -> None:
        """One output format; a destination fault fails the last format's destination."""
        state = FORMAT_STATUS.get(status, "New")
        if status == "Error":
            state = {"processing": "Error", "destination": "Error", "download": "New"}.get(kind, "Finished")
        url = (
            f"s3://demo-media/{task.task_id}/{n}.mp4"
            if n == 1
            else f"ftp://upload:{FTP_PASSWORD}@ftp.example.com/{task.task_id}/{n}.webm"
        )
        _fields(fmt, id=f"{task.task_id}{n:02d}", status=state, output="mp4" if n == 1 else "webm", destination=url)
        if state == "Finished":
            _fields(fmt, destination_status="Saved")
        elif kind == "destination" and status == "Error":  # fails once the media is done
            _fields(fmt, destination_status=f"Error ({task.fault[1]})")

    def xml(self, root: Element) -> web.Response:
        body = '<?xml version="1.0"?>\n' + tostring(root, encoding="unicode")
        return web.Response(text=body, content_type=self.content_type)

    # -- demo -------------------------------------------------------------------------

    def demo_account(self) -> dict[str, Any]:
        os.environ.setdefault("DEMO_ENCODING_COM_USERKEY", self.userkey)
        return {
            "provider": self.name,
            "endpoint": self.url,
            "userid": self.userid,
            "userkey": {"env": "DEMO_ENCODING_COM_USERKEY"},
        }


def _fields(parent: Element, **fields: str) -> None:
    for tag, text in fields.items():
        SubElement(parent, tag).text = text


def _time(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix))


def _errors(response: Element, texts: list[str]) -> None:
    errors = SubElement(response, "errors")
    for text in texts:
        SubElement(errors, "error").text = text


def _width(stage: int) -> float:
    """The share of the timeline a stage takes."""
    end = STAGES[stage + 1][1] if stage + 1 < len(STAGES) else 1.0
    return end - STAGES[stage][1]


def _stage(task: SimTask, now: float, stops_in: str | None) -> tuple[int, float, float]:
    """The stage reached, the overall progress 0..1 and the share of the stage done, 0..1."""
    overall = task.progress(now)
    stage = max(i for i, (_, start) in enumerate(STAGES) if overall >= start)
    if stops_in is not None:
        stage = min(stage, [name for name, _ in STAGES].index(stops_in))
    start, width = STAGES[stage][1], _width(stage)
    overall = min(overall, start + width)
    return stage, overall, (overall - start) / width
