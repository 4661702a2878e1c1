"""Serve a :class:`LocalControlPlane` over loopback HTTP with uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from ._app import LocalControlPlane

__all__ = ["LocalServer", "serve"]

_BANNER = "Local Fireworks control plane listening on {url}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on such sockets, and without it
    # uvicorn's separate header and body writes stall ~40 ms on delayed ACKs per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(plane: LocalControlPlane, host: str, port: int, log_level: str) -> Any:
    config = uvicorn.Config(
        plane.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


class LocalServer:
    """Run a control plane on a loopback port in a daemon thread, as a context manager.

    ``port=0`` binds a free port first (no race), so :attr:`base_url` is known on entry.
    """

    def __init__(
        self,
        plane: LocalControlPlane,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.plane = plane
        self.host = host
        self.port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._socket is None:
            raise RuntimeError("LocalServer is not running; use it as a context manager first.")
        return _url(self.host, self.port)

    def start(self) -> None:
        """Bind, start uvicorn in a thread and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("LocalServer is already running.")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = _uvicorn_server(self.plane, self.host, self.port, self._log_level)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"fireworks-local-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on {_url(self.host, self.port)}.")
            time.sleep(0.005)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit and wait for its thread (at most ``timeout`` seconds)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None
        self._socket = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    plane: LocalControlPlane,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "warning",
) -> None:
    """Serve ``plane`` in the foreground until Ctrl-C, after printing the base URL line."""
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    server = _uvicorn_server(plane, host, actual, log_level)
    print(_BANNER.format(url=_url(host, actual)), flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
