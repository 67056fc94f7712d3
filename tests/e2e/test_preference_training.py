"""Preference training helps, through Discord: corrections are preference pairs (chosen: the correction,
rejected: the bot's wrong reply); ``method:supervised+preference`` trains the chosen replies, then DPO from
that model against it, and ``method:preference`` from a trained model uses that model as its reference.

Measured on the tiny model with the helpers of ``tests/fakes/tiny_model.py``: greedy exact match, and how
often a model gives a pair's chosen reply a higher log-probability than its rejected one (with the mean
margin in nats).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from tests.conftest import running_hypotez
from tests.e2e.test_loop import review_everything
from tests.fakes.interactions import ADMIN_MEMBER, Attachment, slash
from tests.fakes.tiny_model import (
    PreferenceScore,
    exact_match,
    make_tiny_model,
    score_preferences,
    supervised_examples,
    synthetic_task,
)

if TYPE_CHECKING:
    from pathlib import Path

    from hypotez.config import Settings
    from hypotez.storage.models import TrainingJob
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

#: Training and inference share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = [pytest.mark.one_database, pytest.mark.timeout(900)]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_LOGGER = logging.getLogger(__name__)


async def _correct_every_answer(hz: RunningBot, pairs: list[tuple[str, str]]) -> None:
    """Members ask each question and correct the bot's answer in place; a curator approves every correction."""
    for question, answer in pairs:
        asked = await hz.send(slash("chat", {"message": question}))
        assert asked.original_message is not None
        corrected = await hz.send(slash("correct", {"message_id": asked.original_message["id"], "correction": answer}))
        assert "Correction saved" in str(corrected.content)
    assert await review_everything(hz) == len(pairs)


async def _until_finished(hz: RunningBot, job_id: int) -> TrainingJob:
    for _ in range(1500):  # up to about 12 minutes on a loaded machine
        await hz.services.jobs.poll_once()
        job = await hz.services.jobs.get(job_id)
        if job.finished_at is not None:
            assert job.status == "succeeded", job.error
            return job
        await asyncio.sleep(0.5)
    pytest.fail(f"job {job_id} did not finish")


async def _train(hz: RunningBot, options: dict[str, Any], job_id: int) -> tuple[str, TrainingJob]:
    """``/train`` with ``options``; returns its reply and the finished job."""
    launched = await hz.send(
        slash("train", {"dataset": "corrections", "trainer": "local", **options}, user=ADMIN_MEMBER)
    )
    [reply] = [str((c.json or {}).get("content")) for c in launched.followups if "started on" in str(c.json)]
    return reply, await _until_finished(hz, job_id)


def _trained_pairs(job_dir: Path) -> list[dict[str, Any]]:
    """The preference pairs the job trained on, as the worker received them."""
    return json.loads((job_dir / "request.json").read_text())["train_examples"]


async def _measure(
    model: Path, pairs: list[tuple[str, str]], prefs: list[dict[str, Any]]
) -> tuple[float, PreferenceScore]:
    return await asyncio.to_thread(exact_match, model, pairs), await asyncio.to_thread(score_preferences, model, prefs)


@pytest.mark.asyncio
async def test_supervised_then_preference_keeps_what_sft_taught_and_widens_the_preference(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    pairs = synthetic_task(50)
    # The bot is wrong in a plausible way: it answers with another name's code word.
    wrong = {question: pairs[(i + 1) % len(pairs)][1] for i, (question, _) in enumerate(pairs)}
    openai_fake.reply_with(lambda messages, model: wrong[str(messages[-1]["content"])])
    tiny = make_tiny_model(bot_settings.data_dir / "models" / "tiny", [f"{q} {a}" for q, a in pairs])
    settings = bot_settings.model_copy(update={"local_max_new_tokens": 16})
    async with running_hypotez(settings, openai_fake) as hz:
        await _correct_every_answer(hz, pairs)
        started = time.perf_counter()
        reply, job = await _train(hz, {"base_model": "local:tiny", "method": "supervised+preference"}, 1)
        trained_in = time.perf_counter() - started
        assert "started on `local:tiny` with 50 examples" in reply
        assert "`beta` = 0.1 (auto" in reply, reply
        assert "reference: the supervised stage's model" in reply, reply
        assert job.hyperparameters["reference"] == "the supervised stage's model"
        assert {"beta", "rpo_alpha", "preference_epochs", "preference_learning_rate"} <= set(
            job.hyperparameters["auto"]
        )

        # DPO's rewards stream into the job's metrics events, marked as its stage.
        events = await hz.services.jobs.events(1)
        dpo = [e.data for e in events if e.data.get("stage") == "preference" and "train_loss" in e.data]
        assert dpo
        assert {"reward_accuracy", "reward_margin", "reward_chosen", "reward_rejected"} <= dpo[-1].keys()
        steps = [e.data["step"] for e in events if "train_loss" in e.data]
        assert steps == sorted(steps)  # the stages count on from each other

        job_dir = settings.data_dir / "training" / "job-1"
        prefs = _trained_pairs(job_dir)
        assert prefs[0]["non_preferred_output"][-1]["content"] == wrong[pairs[0][0]]
        base_exact, base = await _measure(tiny, pairs, prefs)
        sft_exact, sft = await _measure(job_dir / "supervised-model", pairs, prefs)
        final_exact, final = await _measure(job_dir / "model", pairs, prefs)

        # What members see: /test on the model, after switching to it.
        switched = await hz.send(slash("model", {"name": "local:job-1"}, subcommand="use", user=ADMIN_MEMBER))
        assert any("now talks with `local:job-1`" in str(c.json) for c in switched.followups)
        data = "".join(json.dumps({"text": q, "expected": a}) + "\n" for q, a in pairs).encode()
        file = hz.rest.host(Attachment("task.jsonl", data, content_type="application/jsonl"))
        result = await hz.send(slash("test", {"file": file}, subcommand="run", attachments=[file], user=ADMIN_MEMBER))  # type: ignore[arg-type]
        [answer] = [c for c in result.followups if c.files]
        tested = json.loads(answer.files[0].content.decode().splitlines()[0])["summary"]["exact_match"]

    train_seconds = next(e.data["train_seconds"] for e in events if "train_seconds" in e.data)
    print(
        f"\nsupervised+preference: exact match {base_exact:.0%} -> SFT {sft_exact:.0%} -> SFT+DPO {final_exact:.0%} "
        f"(/test {tested:.0%}); preference accuracy {base.accuracy:.0%} (margin {base.margin:+.2f}) -> SFT "
        f"{sft.accuracy:.0%} ({sft.margin:+.2f}) -> SFT+DPO {final.accuracy:.0%} ({final.margin:+.2f}); "
        f"training {train_seconds:.1f} s, the job {trained_in:.1f} s; {job.hyperparameters}"
    )
    assert sft_exact >= 0.9
    assert final_exact >= sft_exact  # DPO, with the chosen replies' NLL, loses nothing SFT taught
    assert tested == final_exact
    assert final.accuracy >= sft.accuracy
    assert final.margin > sft.margin  # and it widens the preference of the right answers over the wrong ones
    assert final.accuracy > base.accuracy


@pytest.mark.asyncio
async def test_preference_training_from_a_trained_model_uses_it_as_the_reference_and_fixes_its_answers(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    old = synthetic_task(20, seed=0)
    new = synthetic_task(20, seed=1)  # the same questions, other answers: the facts changed
    tiny = make_tiny_model(bot_settings.data_dir / "models" / "tiny", [f"{q} {a}" for q, a in old + new])
    settings = bot_settings.model_copy(update={"local_max_new_tokens": 16})
    async with running_hypotez(settings, openai_fake) as hz:
        # A model trained here on the old facts (quickly, with given hyperparameters), which the bot then uses.
        data = "".join(json.dumps(e) + "\n" for e in supervised_examples(old)).encode()
        file = hz.rest.host(Attachment("old.jsonl", data, content_type="application/jsonl"))
        fast = {"lora": False, "max_steps": 150, "batch_size": 16, "learning_rate": 3e-3}
        launched = await hz.send(
            slash(
                "train",
                {"file": file, "trainer": "local", "base_model": "local:tiny", **fast},
                attachments=[file],  # type: ignore[arg-type]
                user=ADMIN_MEMBER,
            )
        )
        assert any("started on `local:tiny`" in str(c.json) for c in launched.followups)
        await _until_finished(hz, 1)
        await hz.send(slash("model", {"name": "local:job-1"}, subcommand="use", user=ADMIN_MEMBER))

        # Members correct what it says (the old facts) with the new ones.
        await _correct_every_answer(hz, new)
        reply, job = await _train(hz, {"base_model": "local:job-1", "method": "preference", "epochs": 30}, 2)
        assert "reference: the starting model, local:job-1" in reply, reply
        assert job.hyperparameters["reference"] == "the starting model, local:job-1"
        events = await hz.services.jobs.events(2)

    # At the first step the model is its own reference: DPO's rewards start at zero.
    first_step = next(e.data for e in events if "reward_chosen" in e.data)
    assert abs(first_step["reward_chosen"]) < 1e-3
    assert abs(first_step["reward_rejected"]) < 1e-3
    training = settings.data_dir / "training"
    prefs = _trained_pairs(training / "job-2")
    before_exact, before = await _measure(training / "job-1" / "model", new, prefs)
    after_exact, after = await _measure(training / "job-2" / "model", new, prefs)
    old_exact = await asyncio.to_thread(exact_match, training / "job-1" / "model", old)
    base_exact = await asyncio.to_thread(exact_match, tiny, new)
    print(
        f"\npreference from local:job-1 (which answers the old facts: {old_exact:.0%}): preference accuracy "
        f"{before.accuracy:.0%} (margin {before.margin:+.2f}) -> {after.accuracy:.0%} ({after.margin:+.2f}); "
        f"exact match on the new facts {base_exact:.0%} (untrained), {before_exact:.0%} -> {after_exact:.0%}"
    )
    assert old_exact >= 0.9  # it really did answer with the rejected replies
    assert after.accuracy > before.accuracy
    assert after.accuracy >= 0.5  # measured: 0% -> 90%
    assert after.margin > before.margin
