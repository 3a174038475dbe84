"""The simulators' fault modes themselves, over real HTTP on loopback: what the fault matrix relies on."""

from __future__ import annotations

import aiohttp
import pytest

from exporter.simulator.encoding_com import EncodingComSimulator
from exporter.simulator.ipernity import IpernitySimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.conftest import ManualClock

MIB = 1 << 20


def yandex_body(sim: YandexDirectSimulator, ids: list[str]) -> dict[str, object]:
    criteria = {"AdImageUploadTaskIDS": [int(i) for i in ids]}
    return {
        "method": "AdImage",
        "token": sim.token,
        "param": {"Action": "CheckUploadStatus", "SelectionCriteria": criteria},
    }


def test_unknown_kinds_and_options_are_refused() -> None:
    sim = YandexDirectSimulator()
    with pytest.raises(ValueError, match="unsupported fault"):
        sim.set_fault("xml_bomb")  # a JSON API has no XML parser to attack
    with pytest.raises(ValueError, match="takes no option"):
        sim.set_fault("http_500", retry_after=3)
    with pytest.raises(ValueError, match="needs size"):
        sim.set_fault("oversized_chunked")
    EncodingComSimulator().set_fault("xml_bomb")  # the XML API plays it


async def test_faults_hold_until_cleared_and_every_request_is_logged(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    sim = YandexDirectSimulator(clock=clock)
    await sim.start()
    try:
        ids = [sim.add_task(duration=10).task_id for _ in range(4)]
        sim.set_fault("http_503", retry_after=3)
        for _ in range(2):
            async with session.post(sim.url, json=yandex_body(sim, ids)) as resp:
                assert (resp.status, resp.headers["Retry-After"]) == (503, "3")
            clock.advance(1.5)
        sim.clear_fault()
        async with session.post(sim.url, json=yandex_body(sim, ids)) as resp:
            assert resp.status == 200
        assert [(r.at - sim.received[0].at, r.answer, r.retry_after) for r in sim.received] == [
            (0.0, "http_503", 3.0),
            (1.5, "http_503", 3.0),
            (3.0, "ok", None),
        ]
    finally:
        await sim.stop()


async def test_partial_leaves_ids_out_as_often_as_told(session: aiohttp.ClientSession) -> None:
    sim = IpernitySimulator(auth_token="")
    await sim.start()
    try:
        ids = [sim.add_task(duration=60).task_id for _ in range(3)]
        sim.set_fault("partial", ids=[ids[1]], times=2)
        seen = []
        for _ in range(3):
            params = {"api_key": sim.api_key, "tickets": ",".join(ids)}
            params["api_sig"] = sim.signature(params, "upload.checkTickets")
            async with session.post(sim.url + "upload.checkTickets/json", data=params) as resp:
                body = await resp.json()
            seen.append([t["id"] for t in body["tickets"]["ticket"]])
        assert seen == [[ids[0], ids[2]], [ids[0], ids[2]], ids]  # no "not found" said of the one left out
    finally:
        await sim.stop()


@pytest.mark.parametrize("kind", ["oversized", "oversized_chunked"])
async def test_oversized_bodies_are_streamed_until_the_client_hangs_up(
    kind: str, session: aiohttp.ClientSession
) -> None:
    sim = YandexDirectSimulator()
    await sim.start()
    try:
        sim.set_fault(kind, size=64 * MIB)
        async with session.post(sim.url, json=yandex_body(sim, [])) as resp:
            assert resp.content_length == (64 * MIB if kind == "oversized" else None)
            read = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                read += len(chunk)
                if read > 2 * MIB:
                    break  # what a capped client does; the simulator must stop without error
        assert read > 2 * MIB
    finally:
        await sim.stop()


@pytest.mark.parametrize("kind", ["reset", "truncated"])
async def test_cut_bodies_announce_more_than_they_send(kind: str, session: aiohttp.ClientSession) -> None:
    sim = YandexDirectSimulator()
    await sim.start()
    try:
        ids = [sim.add_task(duration=10).task_id for _ in range(20)]
        sim.set_fault(kind)
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(sim.url, json=yandex_body(sim, ids)) as resp:
                await resp.read()
    finally:
        await sim.stop()
