"""`agent-cl report --serve`: the morning report kept live on a local port, rebuilt per request.

Loopback by default; any other address needs the admin key (the rule `agent-cl serve` follows),
and with a key set every request must carry it (`Authorization: Bearer ...`). Standard library
only: one page, no framework.
"""

from __future__ import annotations

import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent_cl.config import ConfigError, Settings, vllm_api_key
from agent_cl.night.morning import ExtraSections, page
from agent_cl.serving.access import is_loopback


def report_server(
    settings: Settings, host: str, port: int, extra: ExtraSections | None = None
) -> ThreadingHTTPServer:
    """A server answering GET / with a fresh page; the caller runs `serve_forever()`."""
    key = vllm_api_key()
    if not is_loopback(host) and not key:
        raise ConfigError(
            f"refusing to serve the report on {host} without a key: set AGENT_CL_VLLM_API_KEY "
            "or bind 127.0.0.1"
        )

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if key and not _authorized(self.headers.get("Authorization"), key):
                self._answer(401, b"this page needs the key (Authorization: Bearer ...)")
            elif self.path not in ("/", "/index.html"):
                self._answer(404, b"the report is at /")
            else:
                _, text = page(settings, extra)
                self._answer(200, text.encode(), "text/html; charset=utf-8")

        def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet: the CLI prints the URL
            return

    return ThreadingHTTPServer((host, port), Page)


def _authorized(header: str | None, key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())
