"""A loopback HTTP file server for download tests: byte ranges, injected failures, recorded requests.

    with LoopbackServer(tmp_path) as server:
        server.truncate["/a.zip"] = 100        # send 100 body bytes, then close the connection
        server.fail["/b.zip"] = 404            # answer 404
        server.ignore_range.add("/c.zip")      # answer 200 with the whole file even to a Range request
        download_file(server.url + "/a.zip", dest)
        assert server.requests[-1] == ("/a.zip", None)

Only 127.0.0.1 is used (port 0: the system picks a free port). Import it as `from tests.helpers.http_server import
LoopbackServer` (tests/ is a package) or take the `loopback_server` fixture (conftest.py).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class LoopbackServer:
    """Serves the files under `root` at `self.url` from a background thread until closed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.truncate: dict[str, int] = {}  # URL path -> body bytes sent before closing the connection
        self.fail: dict[str, int] = {}  # URL path -> HTTP status to answer with
        self.ignore_range: set[str] = set()  # URL paths answered 200 (whole file) even to a Range request
        self.requests: list[tuple[str, str | None]] = []  # (URL path, Range header) per request
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:54321."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        # A short poll interval: shutdown() waits for the next poll, and tests close many servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append((path, range_header))


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one response per connection, so a truncated body ends with the connection.
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            range_header = self.headers.get("Range")
            server._record(path, range_header)
            if path in server.fail:
                self.send_error(server.fail[path])
                return
            file = (server.root / unquote(path).lstrip("/")).resolve()
            if not file.is_file() or not file.is_relative_to(server.root):
                self.send_error(404)
                return
            data = file.read_bytes()
            size = len(data)
            match = _RANGE.match(range_header or "")
            if match is None or path in server.ignore_range:
                self.send_response(200)
                body = data
            else:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                body = data[start:end + 1]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))  # the full length, even when truncating
            self.end_headers()
            if path in server.truncate:
                body = body[:server.truncate[path]]
            self.wfile.write(body)
            self.wfile.flush()

    return Handler
