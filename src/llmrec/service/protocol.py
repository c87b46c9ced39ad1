"""A header timeout for uvicorn, which has none: a client that opens a connection and sends its
request line and headers slowly (or not at all) is disconnected after ``seconds``.

uvicorn's own timers cover an idle keep-alive connection (``timeout_keep_alive``) but not a
request whose headers are still arriving, so a few slow clients could hold every connection
(slowloris). This wraps uvicorn's httptools protocol (the ``serve`` extra installs httptools):
a timer starts when a connection opens and when a request begins, and stops when its headers
are complete. Bodies have their own timeout (``middleware.BodyLimit``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    class HeaderTimeout(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Any) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeout
