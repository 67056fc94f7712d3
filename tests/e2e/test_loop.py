"""The loop works, through Discord: members correct the bot's wrong answers, the corrections become a
dataset, a local model trains on it, the bot switches to it, and ``/test`` shows it learned.

~50 corrections of a synthetic task (code words of made-up names) on which a tiny untrained model scores
near zero; ``/train`` with no hyperparameters at all must reach at least 90% exact match: the automatic
choices (full fine-tuning for so small a model, the passes and the rate for its size) are shown before it
starts and stored with the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from tests.conftest import running_hypotez
from tests.fakes.interactions import ADMIN_MEMBER, Attachment, button, slash
from tests.fakes.tiny_model import make_tiny_model, synthetic_task

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

#: Training and inference share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = [pytest.mark.one_database, pytest.mark.timeout(900)]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_LOGGER = logging.getLogger(__name__)
PAIRS = synthetic_task(50)


async def _accuracy(hz: RunningBot, model: str | None) -> float:
    data = "".join(json.dumps({"text": q, "expected": a}) + "\n" for q, a in PAIRS).encode()
    file = hz.rest.host(Attachment("task.jsonl", data, content_type="application/jsonl"))
    options: dict[str, object] = {"file": file}
    if model is not None:
        options["model"] = model
    result = await hz.send(slash("test", options, subcommand="run", attachments=[file], user=ADMIN_MEMBER))  # type: ignore[arg-type]
    [answer] = [c for c in result.followups if c.files]
    lines = answer.files[0].content.decode().splitlines()
    summary = json.loads(lines[0])["summary"]
    _LOGGER.info("%s: %s", model, lines[1:4])
    assert summary["cases"] == len(PAIRS)
    assert summary["errors"] == 0
    return float(summary["exact_match"])


async def review_everything(hz: RunningBot) -> int:
    """The server's curator goes through the queue with /review next, approving each item with its button (the
    answer to a press is the same message showing the next item); returns how many were approved."""
    shown = await hz.send(slash("review", subcommand="next", user=ADMIN_MEMBER))
    approved = 0
    while True:
        ids = [c["custom_id"] for row in shown.components for c in row["components"]]
        approve = next((i for i in ids if i.startswith("hz.ra:")), None)
        if approve is None:
            assert "Nothing to review" in (shown.content or ""), shown.content
            return approved
        message = shown.original_message
        assert message is not None
        shown = await hz.send(button(approve, message, user=ADMIN_MEMBER))
        assert "You approved" in (shown.content or "")
        approved += 1


@pytest.mark.asyncio
async def test_corrections_train_a_model_that_learns(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    make_tiny_model(bot_settings.data_dir / "models" / "tiny", [f"{q} {a}" for q, a in PAIRS])
    openai_fake.reply_with("I don't know.")
    # Answers are one word: an untrained model would otherwise babble to the end of its window 50 times.
    settings = bot_settings.model_copy(update={"local_max_new_tokens": 16})
    async with running_hypotez(settings, openai_fake) as hz:
        # Members ask; the bot is wrong; they correct it in place.
        for question, answer in PAIRS:
            asked = await hz.send(slash("chat", {"message": question}))
            assert asked.original_message is not None
            corrected = await hz.send(
                slash("correct", {"message_id": asked.original_message["id"], "correction": answer})
            )
            assert corrected.content is not None
            assert "Correction saved" in corrected.content

        # Nothing trains before a curator agrees: the corrections wait in the review queue.
        refused = await hz.send(
            slash(
                "train", {"dataset": "corrections", "trainer": "local", "base_model": "local:tiny"}, user=ADMIN_MEMBER
            )
        )
        assert "started" not in " ".join(str(c.json) for c in refused.followups) + str(refused.content)
        approved = await review_everything(hz)
        assert approved == len(PAIRS)

        before = await _accuracy(hz, "local:tiny")
        assert before <= 0.1

        started = time.perf_counter()
        launched = await hz.send(
            slash(
                "train", {"dataset": "corrections", "trainer": "local", "base_model": "local:tiny"}, user=ADMIN_MEMBER
            )
        )
        [reply] = [str((c.json or {}).get("content")) for c in launched.followups if "started on" in str(c.json)]
        assert "started on `local:tiny` with 50 examples" in reply
        # What was chosen, and why, before it runs: full fine-tuning for a model this small.
        assert "`lora` = false (auto: full fine-tuning" in reply, reply
        assert "`epochs` = 100 (auto:" in reply, reply
        assert len(reply) <= 2000
        job = None
        for _ in range(1500):  # up to about 12 minutes on a loaded machine
            await hz.services.jobs.poll_once()
            job = await hz.services.jobs.get(1)
            if job.finished_at is not None:
                break
            await asyncio.sleep(0.5)
        assert job is not None
        assert job.status == "succeeded", job.error
        trained_in = time.perf_counter() - started
        assert job.result_model == "local:job-1"
        # Stored with the job: every value the worker used, and which were chosen automatically.
        assert job.hyperparameters["lora"] is False
        assert {"lora", "epochs", "learning_rate", "batch_size"} <= set(job.hyperparameters["auto"])
        train_seconds = next(
            e.data["train_seconds"] for e in await hz.services.jobs.events(1) if "train_seconds" in e.data
        )
        assert job.metrics["loss"][-1][1] < job.metrics["loss"][0][1]

        switched = await hz.send(slash("model", {"name": "local:job-1"}, subcommand="use", user=ADMIN_MEMBER))
        assert any("now talks with `local:job-1`" in str(c.json) for c in switched.followups)
        after = await _accuracy(hz, None)  # the active model
        print(
            f"\nloop: exact match {before:.0%} -> {after:.0%} with {job.hyperparameters}; "
            f"training {train_seconds:.1f} s, the job {trained_in:.1f} s"
        )
        assert after >= 0.9

        # And the bot now answers members with it.
        question, answer = PAIRS[0]
        asked = await hz.send(slash("chat", {"message": question}))
        assert asked.original_message is not None
        assert asked.original_message["content"] == answer
