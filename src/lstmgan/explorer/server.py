"""`lstmgan explore`: serve the explorer page on this machine until Ctrl-C."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

from ..errors import UsageError

DEFAULT_HOST = "127.0.0.1"   # this machine only; another host is the user's explicit choice
DEFAULT_PORT = 8765


def require_extra():
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise UsageError("the explorer needs its extra: pip install 'lstmgan[explorer]'") from None
    return uvicorn


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the models load, so a taken port fails at once."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be in 0..65535 (got {port})")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)    # connections queue from now on, so the printed URL answers once serving starts
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server_for(catalog, sock: socket.socket):
    """A uvicorn server for the explorer app over `catalog`, quiet and without a Server header."""
    uvicorn = require_extra()
    from .app import create_app

    config = uvicorn.Config(create_app(catalog), log_level="warning", access_log=False, server_header=False,
                            lifespan="off")
    return uvicorn.Server(config)


class Background:
    """The explorer served from a thread (tests, benchmarks): `with Background(catalog) as url: ...`."""

    def __init__(self, catalog, host: str = DEFAULT_HOST, port: int = 0):
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = server_for(catalog, self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the explorer server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def serve(checkpoints=(), host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, shipped: bool = True) -> None:
    """Load the models, print the page's URL, serve until Ctrl-C (or SIGTERM), then return."""
    require_extra()
    from .catalog import build_catalog

    sock = bind(host, port)
    catalog = build_catalog(checkpoints, shipped)
    server = server_for(catalog, sock)
    print(f"lstmgan explorer: {url_of(sock)} ({len(catalog.generators)} generators, "
          f"{len(catalog.palindromes)} palindrome models; Ctrl-C stops)", flush=True)
    # uvicorn catches Ctrl-C / SIGTERM, shuts down, then raises the signal again for the handler it
    # found: make that one a no-op, so a stop is a clean exit (0) rather than KeyboardInterrupt or -15
    previous = {number: signal.signal(number, lambda *_: None) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    print("lstmgan explorer: stopped", file=sys.stderr)
