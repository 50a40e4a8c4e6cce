"""A real HTTP server on 127.0.0.1 serving real images and planted faults, for ``ptdm collect``.

It counts what happened independently of ptdm: requests per path, and the most connections
handled at once per host name (``Host:`` header, so that ``127.0.0.1`` and ``localhost`` are two
hosts of one server).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


def png(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def jpeg(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


class ImageServer:
    """``/img/N.png`` is image N; the fault paths are in :meth:`_route`. ``slow_seconds`` must be
    above the client's read timeout."""

    def __init__(self, slow_seconds: float = 3.0, hold_seconds: float = 0.0):
        self.requests: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.slow_seconds, self.hold_seconds = slow_seconds, hold_seconds
        self.extra: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.agents: Counter[str] = Counter()  # User-Agent headers seen
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                host = (self.headers.get("Host") or "").split(":")[0]
                with server.lock:
                    server.requests[self.path] += 1
                    server.agents[self.headers.get("User-Agent") or ""] += 1
                    server.in_flight[host] += 1
                    server.max_in_flight[host] = max(server.max_in_flight[host], server.in_flight[host])
                    n = server.requests[self.path]
                try:
                    if server.hold_seconds:
                        time.sleep(server.hold_seconds)
                    server._route(self, self.path, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight[host] -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> "ImageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None,
              length: int | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        if body:
            h.wfile.write(body)

    def _route(self, h: BaseHTTPRequestHandler, path: str, n: int) -> None:
        send = self._send
        if path in self.extra:
            status, headers, body = self.extra[path]
            return send(h, status, body, headers)
        if path.startswith("/img/"):
            seed = int(path.rsplit("/", 1)[1].split(".")[0])
            return send(h, 200, png(seed), {"Content-Type": "image/png", "ETag": f'"img{seed}"',
                                            "Last-Modified": "Mon, 02 Nov 2026 10:00:00 GMT"})
        if path == "/missing.png":
            return send(h, 404, b"not found", {"Content-Type": "text/plain"})
        if path == "/gone.png":
            return send(h, 403, b"forbidden", {"Content-Type": "text/plain"})
        if path == "/flaky.png":  # 500 twice, then the image
            if n <= 2:
                return send(h, 500, b"oops", {"Content-Type": "text/plain"})
            return send(h, 200, png(9001), {"Content-Type": "image/png"})
        if path == "/down.png":  # always 503
            return send(h, 503, b"down", {"Content-Type": "text/plain"})
        if path == "/slow.png":
            time.sleep(self.slow_seconds)
            return send(h, 200, png(9002), {"Content-Type": "image/png"})
        if path == "/cut.png":  # promises more than it sends, then closes
            body = png(9003)
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body[: len(body) // 3])
            h.wfile.flush()
            h.close_connection = True
            return None
        if path == "/photo":  # a JPEG served as text/html
            return send(h, 200, jpeg(9004), {"Content-Type": "text/html; charset=utf-8"})
        if path == "/page.png":  # an HTML page served as image/png
            return send(h, 200, b"<!doctype html><html><body>hello</body></html>", {"Content-Type": "image/png"})
        if path.startswith("/hop/"):  # /hop/3 -> /hop/2 -> /hop/1 -> /hop/0 = an image
            k = int(path.rsplit("/", 1)[1])
            if k == 0:
                return send(h, 200, png(9005), {"Content-Type": "image/png"})
            return send(h, 302, b"", {"Location": f"/hop/{k - 1}"})
        if path == "/loop/a":
            return send(h, 302, b"", {"Location": "/loop/b"})
        if path == "/loop/b":
            return send(h, 301, b"", {"Location": "/loop/a"})
        if path == "/huge.png":  # declares more than the byte limit; sends nothing more
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(10 ** 9))
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            return None
        if path == "/noai.png":
            return send(h, 200, png(9006), {"Content-Type": "image/png", "X-Robots-Tag": "noai, noimageai"})
        if path == "/busy.png":  # 429 with Retry-After: 1 once, then the image
            if n == 1:
                return send(h, 429, b"slow down", {"Content-Type": "text/plain", "Retry-After": "1"})
            return send(h, 200, png(9007), {"Content-Type": "image/png"})
        if path == "/empty.png":
            return send(h, 200, b"", {"Content-Type": "image/png"})
        return send(h, 404, b"no route", {"Content-Type": "text/plain"})
