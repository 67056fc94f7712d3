"""What every local stand-in of a remote service shares: used as ``async with Fake() as fake``, and (for the
aiohttp ones) served on a free port of 127.0.0.1."""

from __future__ import annotations

from typing import Self

from aiohttp import web

__all__ = ["LocalServer"]


class LocalServer:
    """A stand-in started on entry and closed on exit; subclasses define :meth:`start` and :meth:`close`."""

    _runner: web.AppRunner | None = None
    _port: int | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _serve(self, app: web.Application) -> None:
        """Serve ``app`` on a free port of 127.0.0.1 (port 0: no races between tests)."""
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def _stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _address(self, scheme: str) -> str:
        if self._port is None:
            msg = f"{type(self).__name__} is not started"
            raise RuntimeError(msg)
        return f"{scheme}://127.0.0.1:{self._port}"
