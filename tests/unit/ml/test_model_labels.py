"""The names members see for model ids, and a model server's own explanation of a refused request."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from hypotez.ml.chat import model_label, service_reason
from tests.fakes.openai_api import FakeOpenAI


@pytest.mark.parametrize(
    ("model", "shown"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),  # a hub id is not a path
        ("local:job-3", "local:job-3"),
        ("ft:gpt-4o-mini:acme:x:1", "ft:gpt-4o-mini:acme:x:1"),
        ("/srv/models/qwen-ft", "qwen-ft"),
        ("/srv/models/qwen-ft/", "qwen-ft"),
        ("./models/tiny", "tiny"),
        ("../elsewhere/tiny", "tiny"),
        ("~/models/mine", "mine"),
        ("C:\\models\\llama", "llama"),
        ("D:/models/llama", "llama"),
    ],
)
def test_a_path_is_shown_by_its_last_part_and_anything_else_as_it_is(model: str, shown: str) -> None:
    assert model_label(model) == shown


def test_an_operators_alias_wins() -> None:
    aliases = {"/srv/models/qwen-ft": "house", "gpt-4o-mini": "fast"}
    assert model_label("/srv/models/qwen-ft", aliases) == "house"
    assert model_label("gpt-4o-mini", aliases) == "fast"
    assert model_label("/srv/models/other", aliases) == "other"


async def _error(status: int, body: dict[str, Any] | str) -> openai.APIStatusError:
    """The SDK's own error for a server's answer (the OpenAI stand-in answering ``body``)."""
    async with FakeOpenAI() as fake:
        fake.fail_next(status, body=body)
        client = openai.AsyncOpenAI(api_key="sk-unit", base_url=fake.base_url, max_retries=0)
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as exc:
            return exc
        finally:
            await client.close()
    pytest.fail("the request did not fail")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"error": {"message": "Bad things.", "type": "invalid_request_error"}}, "Bad things."),
        (400, {"detail": "Unexpected fields"}, "Unexpected fields"),
        (
            422,
            {"detail": [{"loc": ["body", "model"], "msg": "Field required"}, {"loc": ["body"], "msg": "Bad"}]},
            "model: Field required; Bad",
        ),
        (503, {"error": "cb_worker_dead"}, "cb_worker_dead"),
        (500, "Internal Server Error", "Internal Server Error"),
        (502, "", ""),
        (400, {"something": "else"}, ""),
    ],
)
@pytest.mark.asyncio
async def test_every_shape_of_explanation_is_read(status: int, body: dict[str, Any] | str, reason: str) -> None:
    assert service_reason(await _error(status, body)) == reason


@pytest.mark.asyncio
async def test_the_explanation_is_redacted_and_cut() -> None:
    long = "key sk-abcdefghijklmnop and secret-value-xyz " + "y" * 1000
    reason = service_reason(await _error(400, {"detail": long}), secrets=["secret-value-xyz"])
    assert "sk-abcdefghijklmnop" not in reason
    assert "secret-value-xyz" not in reason
    assert reason.startswith("key [redacted] and [redacted] y")
    assert len(reason) <= 300
    assert reason.endswith("…")
