"""Run ``retrievo serve`` as a child process on loopback (used by the tests and the load benchmark)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PortTaken(RuntimeError):
    """The server could not listen on its port: another process holds it."""


class ServerProcess:
    """``python -m retrievo serve ROOT`` with an API key, started and stopped by the caller.

    Example::

        with ServerProcess(tmp_path, api_key="k") as srv:
            httpx.get(srv.url + "/v1/health")
    """

    def __init__(self, root: str | Path, api_key: str = "test-key", port: int | None = None,
                 args: list[str] | None = None, log: str | Path | None = None,
                 file_size_limit: int | None = None) -> None:
        """``file_size_limit``: the largest file the server may write (RLIMIT_FSIZE), to run it as on a
        nearly full disk: a write past it fails with EFBIG instead of stopping the process."""
        self.root = Path(root)
        self.api_key = api_key
        self._chose_port = not port
        self.port = port or free_port()
        self.args = list(args or [])
        self.log_path = Path(log) if log else None
        self.file_size_limit = file_size_limit
        self.proc: subprocess.Popen | None = None

    def _limits(self) -> None:  # pragma: no cover - runs in the child before exec
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an ignored signal stays ignored across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, self.file_size_limit))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until it answers. A port this object chose that another process took
        before the server bound it is replaced by a fresh one (twice at most); any other failed start raises
        with the end of the server's output."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                if not self._chose_port or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> ServerProcess:
        env = {**os.environ, "RETRIEVO_API_KEY": self.api_key}
        out = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()
        start = out.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retrievo", "serve", str(self.root), "--port", str(self.port), *self.args],
            env=env, stdout=out, stderr=out, preexec_fn=self._limits if self.file_size_limit else None,
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    out.flush()
                    out.seek(start)
                    tail = out.read()[-2000:].decode(errors="replace").strip()
                    kind = _PortTaken if f"cannot listen on 127.0.0.1:{self.port}" in tail else RuntimeError
                    raise kind(f"server exited with status {self.proc.returncode} before it was ready:\n{tail}")
                try:
                    if httpx.get(self.url + "/v1/health", timeout=1.0).status_code in (200, 503):
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        finally:
            out.close()  # the child keeps its own descriptor
        self.kill()
        raise RuntimeError(f"server on port {self.port} not ready after {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
