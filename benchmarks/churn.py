"""A Yandex Direct simulator whose tasks finish while the benchmark watches, on its command.

Its clock stands still until the benchmark starts the churn; from then on tasks finish at a
steady rate (a few percent of all tasks per poll interval), so every later poll has real
work: changed statuses to apply, count and save. The benchmark pauses it (nothing changes
any more) and resets it (every task that finished is pending again) between the exporters
it measures, so each one sees the same timeline.

Answers are the Yandex simulator's, byte for byte in content, but each task's JSON is
rendered once per state and joined: at 1,000,000 tasks the simulator would otherwise spend
more CPU building answers than the exporter spends reading them, on a machine of two cores.
Every ID asked is counted with the time it was asked (monotonic, shared by processes), so
that CPU per status can be computed between any two instants.
"""

from __future__ import annotations

import collections
import json
import time
from typing import Any

from aiohttp import web

from exporter.simulator.base import SimTask
from exporter.simulator.yandex_direct import PAGE_CAP, YandexDirectSimulator

CONTROL = "/-/churn/"
ALREADY_FINAL = 0.1  # of the tasks, finished before the churn starts: history at the first poll
FAIL_RATIO = 0.1  # of the tasks that finish, failed
ASK_LOG = 100_000  # requests remembered: (monotonic time, IDs asked)


class ChurnClock:
    """Simulated time: stands still at `base` until started; pausing stops it where it is."""

    def __init__(self, base: float) -> None:
        self.base = base
        self._frozen = base
        self._started: float | None = None  # monotonic time the clock would have read `base`

    def __call__(self) -> float:
        if self._started is None:
            return self._frozen
        return self.base + time.monotonic() - self._started

    def start(self) -> None:
        if self._started is None:
            self._started = time.monotonic() - (self._frozen - self.base)

    def pause(self) -> None:
        self._frozen = self()
        self._started = None

    def reset(self) -> None:
        self._frozen = self.base
        self._started = None


class ChurnSimulator(YandexDirectSimulator):
    """CheckUploadStatus over tasks that finish at a steady rate once the churn is started."""

    def __init__(self, tasks: int, churn_seconds: float, seed: int = 11) -> None:
        self.churn = ChurnClock(time.time())
        super().__init__(clock=self.churn, seed=seed, log_size=1)
        self.asked: collections.deque[tuple[float, int]] = collections.deque(maxlen=ASK_LOG)
        self._rendered: dict[tuple[str, bool], str] = {}
        base = self.churn.base
        for _ in range(tasks):
            # Finish times spread evenly over `churn_seconds` after the start: the share of tasks
            # finishing between two polls is interval / churn_seconds.
            finish = base - 1 if self.rng.random() < ALREADY_FINAL else base + self.rng.uniform(0, churn_seconds)
            task = self.add_task(
                duration=finish - (base - 3600), created=base - 3600, fails=self.rng.random() < FAIL_RATIO
            )
            for finished in (False, True):  # rendered up front, so that no exporter measured pays for it
                self._render(task, task.finish_at if finished else task.created)

    def record(self, ids: Any, **params: Any) -> None:
        self.asked.append((time.monotonic(), len(ids)))

    def answer(self, ids: list[str], logins: list[str], limit: int, offset: int) -> web.Response:
        if logins or not ids:
            return super().answer(ids, logins, limit, offset)
        now = self.clock()
        selected = [self.tasks[i] for i in ids if i in self.tasks]
        page = ",".join(self._render(t, now) for t in selected[offset : offset + limit])
        body = f'{{"data": {{"AdImageUploads": [{page}], "TotalObjectsCount": {len(selected)}}}}}'
        return web.Response(text=body, content_type="application/json")

    def _render(self, task: SimTask, now: float) -> str:
        key = (task.task_id, task.finished(now))
        text = self._rendered.get(key)
        if text is None:
            text = self._rendered[key] = json.dumps(self.upload(task, now))
        return text

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post(CONTROL + "{action}", self._control)
        app.router.add_get(CONTROL + "asked", self._asked)
        return app

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ("start", "pause", "reset"):
            return web.Response(status=404)
        getattr(self.churn, action)()
        return web.json_response({"clock": self.churn() - self.churn.base})

    async def _asked(self, request: web.Request) -> web.Response:
        """Every request remembered: [[monotonic time, IDs asked], ...]."""
        return web.json_response({"asked": list(self.asked), "page_cap": PAGE_CAP})
