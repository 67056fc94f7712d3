"""Training examples from corrections, and the history sent back to the model, when the model gave nothing."""

from __future__ import annotations

from hypotez.ml.conversation import turns_from_replies
from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.storage.models import BotReply, Correction

CONTEXT = [{"role": "user", "content": "Capital of Australia?"}]


def _correction(original: str) -> Correction:
    return Correction(
        id=7,
        reply_id=1,
        guild_id=1,
        channel_id=2,
        author_id=3,
        context=CONTEXT,
        original_text=original,
        corrected_text="Canberra.",
        source="modal",
    )


def test_a_correction_gives_a_chat_example_and_a_preference_pair() -> None:
    chat, pair = examples_from_correction(_correction("Sydney."))
    assert (chat.kind, chat.messages[-1]["content"]) == ("chat", "Canberra.")
    assert (pair.kind, pair.preferred, pair.rejected) == ("preference", "Canberra.", "Sydney.")


def test_correcting_an_answer_the_model_never_gave_yields_no_pair_against_nothing() -> None:
    [chat] = examples_from_correction(_correction("  "))
    assert chat.kind == "chat"
    assert chat.messages == [*CONTEXT, {"role": "assistant", "content": "Canberra."}]


def _reply(user: str, content: str, outcome: str = "ok") -> BotReply:
    return BotReply(
        guild_id=1, channel_id=2, author_id=3, backend="openai", model="m", prompt_messages=[], user_text=user,
        content=content, outcome=outcome,
    )  # fmt: skip


def test_failed_or_empty_replies_are_not_sent_back_as_empty_answers() -> None:
    turns = turns_from_replies([_reply("hi", "Hello!"), _reply("and?", "", "failed"), _reply("so?", "", "empty")])
    assert [(t.user, t.assistant) for t in turns] == [("hi", "Hello!")]
