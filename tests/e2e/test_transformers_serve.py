"""hypotez against a real OpenAI-compatible server: ``transformers serve`` (the ``serve`` extra) serving the tiny
model the tests build, started as a subprocess on a free port.  Skipped, with the reason, where it cannot start.

The server loads a model when it is first asked for it and lists nothing before: ``/model list`` says so, then
shows the model by its directory's name (the server names it by its path, which members never see).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply
from tests.conftest import running_hypotez
from tests.fakes.interactions import ADMIN_MEMBER, slash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI

pytest.importorskip("torch")
pytest.importorskip("transformers")

#: Seconds the server may take to start (imports torch and transformers; slow on a loaded machine).
START_TIMEOUT = 240.0
#: Seconds one command may take against it (it generates up to 1,024 tokens whatever the model).
SETTLE_TIMEOUT = 300.0

pytestmark = pytest.mark.one_database


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _healthy(port: int) -> bool:
    """Whether ``GET /health`` answers 200 (a bare HTTP/1.0 request: no client library needed)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return b" 200 " in status


@contextlib.asynccontextmanager
async def transformers_serve(home: Path) -> AsyncIterator[str]:
    """``transformers serve`` on a free port with an empty model cache and no network; yields its base URL."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs the serve extra (fastapi, uvicorn): pip install -e '.[serve]'")
    port = _free_port()
    env = {
        **os.environ,
        "HF_HOME": str(home),  # an empty cache: the server lists no model until one is loaded
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; main()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", command, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = bytearray()

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            output.extend(chunk)

    reading = asyncio.create_task(collect())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not await _healthy(port):
            if process.returncode is not None:
                lines = output.decode(errors="replace").strip().splitlines() or ["(no output)"]
                pytest.skip(f"transformers serve could not start (exit {process.returncode}): {lines[-1][:300]}")
            if loop.time() > deadline:
                pytest.skip(f"transformers serve did not answer /health within {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


def _texts(result: Any) -> str:
    parts = [str(result.content or ""), str((result.original_message or {}).get("content", ""))]
    parts += [str(call.json.get("content", "")) for call in result.followups if isinstance(call.json, dict)]
    return "\n".join(parts)


@pytest.mark.timeout(900)
@pytest.mark.asyncio
async def test_chat_model_list_and_test_run_against_transformers_serve(
    tmp_path: Path, bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    from tests.fakes.tiny_model import make_tiny_model, synthetic_task

    pairs = synthetic_task(5)
    model_dir = await asyncio.to_thread(
        make_tiny_model, tmp_path / "served" / "tiny-chat", [f"{q} {a}" for q, a in pairs]
    )
    model_id = str(model_dir)
    async with transformers_serve(tmp_path / "hf") as base_url:
        settings = bot_settings.model_copy(
            # The server generates up to 1,024 tokens of a random model's text: fewer edits of the streaming reply.
            update={
                "openai_base_url": base_url,
                "chat_model": model_id,
                "chat_timeout": 300.0,
                "chat_stream_interval": 1.0,
            }
        )
        async with running_hypotez(settings, openai_fake) as hz:
            # Nothing loaded yet: the server lists nothing, and the member is told so (not "unavailable").
            before = _texts(await hz.send(slash("model", subcommand="list")))
            assert "none listed" in before, before
            assert "the default model is `tiny-chat`" in before
            assert str(tmp_path) not in before

            # /chat streams from the server (which loads the model on this first request) and records usage.
            chat = await hz.send(slash("chat", {"message": pairs[0][0]}), settle=False)
            await hz.settle(timeout=SETTLE_TIMEOUT)  # the model loads and generates on a loaded machine's CPU
            assert chat.original_message is not None
            async with hz.services.db.session() as session:
                [reply] = (await session.scalars(select(BotReply))).all()
            assert reply.outcome in {"ok", "empty"}, _texts(chat)  # a random model may answer nothing
            assert reply.model == model_id
            assert reply.completion_tokens is not None
            assert reply.completion_tokens > 0
            assert reply.prompt_tokens is not None
            assert reply.prompt_tokens > 0
            assert str(tmp_path) not in _texts(chat)

            # The loaded model is listed now, at once (an empty listing is not kept), by its directory's name.
            after = _texts(await hz.send(slash("model", subcommand="list")))
            base = after.split("**Base (served by the chat backend)**")[1]
            assert "`tiny-chat`" in base, after
            assert "none listed" not in base
            assert str(tmp_path) not in after

            # /test run scores the served model on test cases, without an error from the server.
            data = json.dumps([{"text": pairs[1][0], "expected": pairs[1][1]}])
            ran = await hz.send(slash("test", {"data": data}, subcommand="run", user=ADMIN_MEMBER), settle=False)
            await hz.settle(timeout=SETTLE_TIMEOUT)
            run = _texts(ran)
            assert "**tiny-chat** on 1 cases" in run, run
            assert "errors 0" in run, run
            assert str(tmp_path) not in run
