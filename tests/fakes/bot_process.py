"""``hypotez run --http`` as a real process, as an operator starts it: environment variables only, Discord's REST
API and OpenAI's API as the test process's stand-ins, signed interactions POSTed to its port.

For tests of what survives a process: a SIGKILL, a SIGTERM or SIGINT while work is in flight, a restart on the
same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import TYPE_CHECKING

from nacl.signing import SigningKey

from tests.fakes.botkit import public_key_hex
from tests.fakes.interactions import InteractionClient, ping

if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping
    from pathlib import Path

    from tests.fakes.discord_rest import FakeDiscordREST

__all__ = ["TOKEN", "BotProcess", "free_port"]

#: A bot token of the right form (the application id first); the REST stand-in accepts any.
TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.process-secret-token"

#: Seconds a starting process may take to answer its first PING (generous: CI has two loaded cores).
START_TIMEOUT = 90.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess:
    """One ``hypotez run --http`` process; start it with :meth:`start`, talk to it through :attr:`client`."""

    def __init__(
        self,
        workdir: Path,
        rest: FakeDiscordREST,
        *,
        database_url: str,
        openai_base_url: str,
        key: SigningKey | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.rest = rest
        self.key = key or SigningKey.generate()
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTEZ_")}
        env.update(
            HYPOTEZ_DISCORD_TOKEN=TOKEN,
            HYPOTEZ_DISCORD_PUBLIC_KEY=public_key_hex(self.key),
            HYPOTEZ_DISCORD_REST_URL=rest.rest_url,
            HYPOTEZ_OPENAI_BASE_URL=openai_base_url,
            HYPOTEZ_OPENAI_API_KEY="sk-test-key-0123456789",
            HYPOTEZ_CHAT_MODEL="gpt-4o-mini",
            HYPOTEZ_CHAT_MAX_RETRIES="0",
            HYPOTEZ_CHAT_FOOTER="off",
            HYPOTEZ_DATABASE_URL=database_url,
            HYPOTEZ_DATA_DIR=str(workdir / "data"),
            HYPOTEZ_VOICE_TRANSPORT="none",
            HYPOTEZ_COOLDOWN_CHAT_PER_MINUTE="100000",
            HYPOTEZ_JOB_POLL_INTERVAL="3600",
        )
        env.update(extra_env or {})
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.client = InteractionClient(f"http://127.0.0.1:{self.port}", self.key, rest)
        self._output = bytearray()
        self._reader: asyncio.Task[None] | None = None

    @property
    def output(self) -> str:
        """Everything the process wrote on stdout and stderr so far."""
        return self._output.decode(errors="replace")

    async def start(self) -> None:
        """Start the process and wait until it answers a PING on its port."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hypotez", "run", "--http", "--host", "127.0.0.1", "--port", str(self.port),
            cwd=self.workdir, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self.process.returncode is not None:
                await self._reader
                msg = f"hypotez exited with {self.process.returncode} at start-up:\n{self.output}"
                raise AssertionError(msg)
            try:
                answer = await self.client.send(ping())
            except OSError:
                await asyncio.sleep(0.2)
                continue
            if answer.response == {"type": 1}:
                return
        msg = f"hypotez never answered on port {self.port}:\n{self.output}"
        raise AssertionError(msg)

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self._output.extend(chunk)

    async def stop(self, sig: signal.Signals, timeout: float = 60.0) -> int:  # noqa: ASYNC109
        """Send ``sig`` and wait (at most ``timeout`` seconds) for the process to exit; its exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            status = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            msg = f"hypotez did not exit within {timeout:.0f} s of {sig.name}:\n{self.output}"
            raise AssertionError(msg) from None
        if self._reader is not None:
            await self._reader
        return status

    async def close(self) -> None:
        """Kill the process if it still runs (a test that failed half-way) and close the client."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader
        await self.client.close()
