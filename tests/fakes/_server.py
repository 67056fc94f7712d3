"""What every local stand-in of a remote service shares: used as ``async with Fake() as fake``."""

from __future__ import annotations

from typing import Self

__all__ = ["LocalServer"]


class LocalServer:
    """A stand-in started on entry and closed on exit; subclasses define :meth:`start` and :meth:`close`."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
