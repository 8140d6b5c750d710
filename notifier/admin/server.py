"""The admin listener: `GET /metrics`, `GET /healthz` and the status page at `/`.

It runs in the daemon's event loop (aiohttp), reads through the daemon's store thread, and
answers GET and HEAD only. It has no authentication and changes nothing: bind it to loopback
or a private network (`admin.listen`).
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from aiohttp import web

from notifier.admin.metrics import CONTENT_TYPE

log = logging.getLogger("notifier")


class AdminView(Protocol):
    """What the listener asks of the running daemon."""

    async def metrics_text(self) -> bytes: ...

    async def health(self) -> tuple[bool, dict[str, object]]: ...

    async def status_page(self) -> str: ...


_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {**_HEADERS, "Content-Security-Policy":
                 "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'",
                 "Referrer-Policy": "no-referrer"}


class AdminServer:
    def __init__(self, host: str, port: int, view: AdminView) -> None:
        self.host, self.port = host, port
        self._view = view
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("admin listener on http://%s:%d/ (/metrics, /healthz)",
                 f"[{self.host}]" if ":" in self.host else self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = await self._view.metrics_text()
        return web.Response(body=body, headers={**_HEADERS, "Content-Type": CONTENT_TYPE})

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok, facts = await self._view.health()
        return web.Response(text=json.dumps(facts), status=200 if ok else 503,
                            content_type="application/json", headers=_HEADERS)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=await self._view.status_page(), content_type="text/html",
                            charset="utf-8", headers=_PAGE_HEADERS)
