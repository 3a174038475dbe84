"""A real `redis-server` on 127.0.0.1, for the benchmark's replicas and the tests of shared state.

It runs in a work dir with no persistence (`save ""`, `appendonly no`) unless told otherwise,
optionally behind `requirepass`, on a port picked free at the first start and kept across
`stop`/`kill` and `start`, so Redis can be taken away and brought back. Every wait is bounded
in time. tests/redis_server.py adds the clients the tests talk to it with.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.common import free_port

START_SECONDS = 15.0  # the first answer to PING, on a busy 2-core machine
STOP_SECONDS = 10.0
PORT_TRIES = 3  # a port picked free can be taken before redis-server binds it
STEP_SECONDS = 0.05


def _command(*parts: str) -> bytes:
    """One command in the Redis protocol (RESP)."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisServer:
    """One redis-server process; `start`, `stop`, `kill`, `start` again on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.password = password
        self.port = 0  # chosen at the first start
        self.config = {"save": '""', "appendonly": "no", **(extra_config or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> Path:
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.workdir}",
            "daemonize no",
            "protected-mode yes",
            'logfile ""',
            *(f"{key} {value}" for key, value in self.config.items()),
        ]
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
        path = self.workdir / "redis.conf"
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _spawn(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("redis-server is not on PATH (Debian package redis-server; scripts/ensure-test-tools)")
        config = self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [program, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def ping(self) -> bool:
        """Whether the server answers PING (after AUTH when it has a password) within a second."""
        request = (_command("AUTH", self.password) if self.password is not None else b"") + _command("PING")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(request)
                answer = b""
                for _ in range(8):  # a few short reads at most
                    chunk = sock.recv(256)
                    answer += chunk
                    if not chunk or b"PONG" in answer or b"-" in answer:
                        break
                return b"+PONG" in answer
        except OSError:
            return False

    def _wait_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on 127.0.0.1:{self.port} did not answer PING in {timeout:.0f}s")
            time.sleep(STEP_SECONDS)

    def start(self, timeout: float = START_SECONDS) -> None:
        """Start the server (on the port of the first start, if any) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        tries = PORT_TRIES if self.port == 0 else 1
        for attempt in range(tries):
            if tries > 1:
                self.port = free_port()
            self._spawn()
            try:
                self._wait_answering(timeout)
                return
            except RuntimeError:
                self.kill()
                if attempt == tries - 1:
                    raise

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM and wait for the exit (SIGKILL after `timeout`)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL and wait: Redis gone at once, as after a crash."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(STOP_SECONDS)
