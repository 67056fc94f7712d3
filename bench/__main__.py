"""Benchmarks, each a ratio against a baseline measured in the same run (machines are shared and noisy).

* interaction overhead: ``/about`` (lightbulb dispatch, DI, capability check, a database read, a REST
  callback) against a PING answered by hikari alone, through the same signed HTTP path.
* chat pipeline: ``/chat`` (context from the database, streaming from the model stand-in, edits, storing the
  reply) against the bare SDK call to the same stand-in.
* context building: ``build_messages`` over a 200-turn conversation against joining the same strings.

Targets (checked here, printed as PASS/FAIL): /about within 15x a PING, /chat within 10x the bare SDK call.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hypotez.config import load_settings
from hypotez.ml.conversation import Turn, build_messages
from tests.conftest import running_hypotez
from tests.fakes.interactions import ping, slash
from tests.fakes.openai_api import FakeOpenAI

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def _median(fn: Callable[[], Awaitable[object]], rounds: int) -> float:
    for _ in range(max(3, rounds // 10)):  # warm-up
        await fn()
    samples: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _row(name: str, value: float, baseline: float, target: float | None) -> bool:
    ratio = value / baseline
    verdict = "" if target is None else ("PASS" if ratio <= target else "FAIL")
    limit = f"(target <= {target:g}x)" if target is not None else ""
    print(
        f"{name:<34} {value * 1000:9.3f} ms  baseline {baseline * 1000:9.3f} ms  ratio {ratio:7.2f}x {limit} {verdict}"
    )
    return target is None or ratio <= target


async def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeOpenAI() as openai:
            settings = load_settings(
                discord_token="bench-token",
                data_dir=Path(tmp) / "data",
                openai_base_url=openai.base_url,
                chat_max_retries=0,
                chat_stream_interval=0.0,
                voice_transport="none",
            )
            async with running_hypotez(settings, openai) as hz:
                pong = await _median(lambda: hz.send(ping(), settle=False), 200)
                about = await _median(lambda: hz.send(slash("about")), 200)
                ok &= _row("/about vs PING", about, pong, 15)

                openai.reply_with("A short answer of about ten words for the benchmark run.")
                sdk = hz.services.chat
                bare = await _median(
                    lambda: sdk.complete([{"role": "user", "content": "hi"}], "gpt-4o-mini", stream=True), 50
                )
                chat = await _median(lambda: hz.send(slash("chat", {"message": "hi"})), 50)
                ok &= _row("/chat vs bare streamed SDK call", chat, bare, 10)

    history = [Turn(user=f"question {i} " * 20, assistant=f"answer {i} " * 40) for i in range(200)]

    async def build() -> None:
        build_messages("now?", history=history, system_prompt="Be kind.", budget=6000)

    async def join() -> None:
        "".join(t.user + t.assistant for t in history)

    _row("build_messages (200 turns) vs join", await _median(build, 200), await _median(join, 200), None)
    print("all targets met" if ok else "some targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
