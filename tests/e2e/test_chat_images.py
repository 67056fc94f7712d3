"""Images for the model: an image attached to ``/chat`` (or to a message meant for the bot) goes to a model that takes
images as an image part of the OpenAI chat format; other models, non-images, fakes and oversize files are refused
clearly, before the model is asked.  The stored conversation is the text alone."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image
from sqlalchemy import select

from hypotez.ml.chat import accepts_images
from hypotez.storage.models import BotReply
from tests.conftest import message_to_bot, running_hypotez
from tests.fakes.interactions import Attachment, message_payload, next_snowflake, said, slash

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


def _png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


def _sent_parts(hz: RunningBot) -> list[Any]:
    """The content of the last user turn the model was sent."""
    [*_, last] = [r.json for r in hz.openai.requests if r.path.endswith("/chat/completions")]
    return last["messages"][-1]["content"]


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _image_option(hz: RunningBot, name: str, data: bytes, content_type: str) -> Attachment:
    return hz.rest.host(Attachment(name, data, content_type=content_type))


@pytest.mark.asyncio
async def test_an_image_goes_to_a_vision_model_as_an_image_part(hz: RunningBot) -> None:
    hz.openai.reply_with("A red square.")
    png = _png()
    file = _image_option(hz, "square.png", png, "image/png")
    result = await hz.send(slash("chat", {"message": "What is this?", "image": file}, attachments=[file]))  # type: ignore[arg-type]
    assert result.original_message is not None
    assert result.original_message["content"] == "A red square."
    parts = _sent_parts(hz)
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
    [stored] = await _replies(hz)
    assert stored.prompt_messages[-1] == {"role": "user", "content": "What is this?"}  # no image data kept


@pytest.mark.asyncio
async def test_models_that_do_not_take_images_and_bad_files_are_refused(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    openai_fake.reply_with("never asked")
    openai_fake.models.append("gpt-3.5-turbo")
    settings = bot_settings.model_copy(update={"chat_image_max_bytes": 2_000})
    async with running_hypotez(settings, openai_fake) as hz:
        png = _image_option(hz, "square.png", _png(), "image/png")
        text_only = await hz.send(
            slash("chat", {"message": "see?", "image": png, "model": "gpt-3.5-turbo"}, attachments=[png])  # type: ignore[arg-type]
        )
        assert "`gpt-3.5-turbo` does not take images" in said(text_only)

        notes = _image_option(hz, "notes.txt", b"just text", "text/plain")
        not_image = await hz.send(slash("chat", {"message": "see?", "image": notes}, attachments=[notes]))  # type: ignore[arg-type]
        assert "`notes.txt` is not an image the model can see" in said(not_image)

        fake = _image_option(hz, "fake.png", b"not a png at all", "image/png")
        renamed = await hz.send(slash("chat", {"message": "see?", "image": fake}, attachments=[fake]))  # type: ignore[arg-type]
        assert "`fake.png` is not a readable png image" in said(renamed)

        big = _image_option(hz, "big.png", _png() + b"\0" * 3_000, "image/png")
        oversize = await hz.send(slash("chat", {"message": "see?", "image": big}, attachments=[big]))  # type: ignore[arg-type]
        assert "images of at most 2.0 KiB go to the model" in said(oversize)

        assert not [r for r in openai_fake.requests if r.path.endswith("/chat/completions")]
        assert await _replies(hz) == []


@pytest.mark.asyncio
async def test_an_image_in_a_message_to_the_bot_goes_along(hz: RunningBot) -> None:
    hz.openai.reply_with("A green square.")
    png = _png((20, 200, 20))
    picture = hz.rest.host(Attachment("green.png", png, content_type="image/png"))
    dm = next_snowflake()
    payload = message_payload("", author_bot=False, channel_id=dm, guild=False, attachments=[picture])
    answered = await message_to_bot(hz, hz.app.bot.entity_factory.deserialize_message(payload))
    assert answered is not None
    assert answered.content == "A green square."
    parts = _sent_parts(hz)
    assert [p["type"] for p in parts] == ["image_url"]  # an image alone, no empty text part


def test_which_models_take_images() -> None:
    assert accepts_images("gpt-4o-mini")
    assert accepts_images("ft:gpt-4o-mini-2024-07-18:acme::abc123")
    assert accepts_images("Qwen/Qwen2.5-VL-7B-Instruct")
    assert not accepts_images("gpt-3.5-turbo")
    assert not accepts_images("Qwen/Qwen2.5-0.5B-Instruct")
    assert accepts_images("my-model", ["my-*"])
