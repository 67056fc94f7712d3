"""Real model servers as members meet them: a server's own explanation of a refused request, a model list that
is empty until a model is loaded, and model ids that are paths on the operator's machine."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply
from tests.conftest import running_hypotez
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, autocomplete, slash

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


def _texts(result: Any) -> str:
    parts = [str(result.content or ""), str((result.original_message or {}).get("content", ""))]
    parts += [str(call.json.get("content", "")) for call in result.followups if isinstance(call.json, dict)]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("status", "body", "said", "advice"),
    [
        # FastAPI's shape (transformers serve, vLLM's own routes): a request field the server does not take.
        (
            400,
            {"detail": "Unexpected fields in the request: {'stream_options'}"},
            "Unexpected fields in the request: {'stream_options'}",
            "administrator needs to fix",
        ),
        # FastAPI's validation errors: a list of problems, each with where it is.
        (
            422,
            {"detail": [{"loc": ["body", "messages", 0, "content"], "msg": "Field required", "type": "missing"}]},
            "messages.0.content: Field required",
            "administrator needs to fix",
        ),
        # OpenAI's envelope naming an unknown model (some servers answer 400 for it).
        (
            400,
            {"error": {"message": "The model `gpt-4o-mini` does not exist.", "code": "model_not_found"}},
            "The model `gpt-4o-mini` does not exist.",
            "Pick another with `/model use`",
        ),
        (
            404,
            {"error": {"message": "model 'gpt-4o-mini' not found, try pulling it first", "type": "api_error"}},
            "model 'gpt-4o-mini' not found, try pulling it first",
            "Pick another with `/model use`",
        ),
        # Plain text, as uvicorn answers a crash.
        (500, "Internal Server Error", "Internal Server Error", "Try again later"),
        (503, {"error": "cb_worker_dead"}, "cb_worker_dead", "Try again later"),
    ],
)
@pytest.mark.asyncio
async def test_the_servers_reason_and_fitting_advice_reach_the_member(
    hz: RunningBot, status: int, body: dict[str, Any] | str, said: str, advice: str
) -> None:
    hz.openai.fail_next(status, body=body, times=5, path_contains="/chat/completions")
    result = await hz.send(slash("chat", {"message": "hello"}))
    text = _texts(result)
    assert f"(HTTP {status})" in text
    assert f"It said: “{said}”" in text
    assert advice in text
    if advice != "Try again later":
        assert "Try again later" not in text
    async with hz.services.db.session() as session:
        [stored] = (await session.scalars(select(BotReply))).all()
    assert stored.outcome == "failed"


@pytest.mark.asyncio
async def test_an_unknown_model_is_named_with_how_to_pick_another(hz: RunningBot) -> None:
    """The stand-in's own 404 for a model it does not serve (OpenAI's wording and code)."""
    hz.openai.models.remove("gpt-4o-mini")  # the configured default
    text = _texts(await hz.send(slash("chat", {"message": "hello"})))
    assert "The model `gpt-4o-mini` is not available on the model service (HTTP 404)" in text
    assert "does not exist or you do not have access to it" in text
    assert "/model use" in text
    assert "/model list" in text


@pytest.mark.asyncio
async def test_the_servers_reason_is_cut_and_its_secrets_redacted(hz: RunningBot) -> None:
    secret = "sk-live-abcdefghijklmnopqrstuvwx"
    configured = hz.settings.openai_api_key
    assert configured is not None
    reason = f"bad key {secret} (configured {configured.get_secret_value()}) " + "x" * 2000
    hz.openai.fail_next(400, body={"detail": reason}, times=5, path_contains="/chat/completions")
    text = _texts(await hz.send(slash("chat", {"message": "hello"})))
    assert "It said: “bad key [redacted] (configured [redacted])" in text
    assert secret not in text
    assert configured.get_secret_value() not in text
    assert "x" * 400 not in text  # cut: the whole explanation is in the log only
    assert "…”" in text


async def _model_list(hz: RunningBot) -> str:
    return _texts(await hz.send(slash("model", subcommand="list")))


@pytest.mark.asyncio
async def test_a_server_with_no_model_loaded_lists_none_then_its_model_at_once(hz: RunningBot) -> None:
    """transformers serve lists nothing until a model is loaded: /model list says so (with the default in
    force), and shows the model as soon as the server lists it, not a minute later."""
    hz.openai.models = []
    listed = await _model_list(hz)
    assert "none listed" in listed
    assert "the default model is `gpt-4o-mini`" in listed
    assert "unavailable" not in listed
    hz.openai.models = ["gpt-4o-mini"]
    assert "`gpt-4o-mini`" in (await _model_list(hz)).split("**Base (served by the chat backend)**")[1]


@pytest.mark.asyncio
async def test_a_failed_listing_says_why_and_is_retried_in_the_background(hz: RunningBot) -> None:
    backends = hz.services.assistant.backends
    backends.retry_delay = 0.2
    hz.openai.fail_next(503, body="Service Unavailable", times=2, path_contains="/models")
    listed = await _model_list(hz)
    assert "unavailable right now" in listed
    assert "(HTTP 503)" in listed
    assert "Service Unavailable" in listed
    assert "the default model is `gpt-4o-mini`" in listed
    # Nobody asks again: the bot lists again by itself (failing once more, then getting the list).
    async with asyncio.timeout(30):
        while len([r for r in hz.openai.requests if r.path == "/v1/models"]) < 3:  # noqa: ASYNC110 - a stand-in's log
            await asyncio.sleep(0.05)
    cached = await backends.backend_models(wait=0)
    assert cached == ["gpt-4.1-mini", "gpt-4o-mini"]
    assert "gpt-4.1-mini" in await _model_list(hz)


@pytest.mark.asyncio
async def test_model_ids_that_are_paths_are_shown_by_name_or_alias(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    """A server that loaded models from directories lists them by path: members see the directory's name (or
    the operator's alias), give that name back, and never see the path."""
    served = "/srv/operator/models/qwen-ft"
    aliased = "/home/op/checkpoints/run-7/final"
    openai_fake.models = [served, aliased]
    settings = bot_settings.model_copy(update={"chat_model": served, "model_aliases": {aliased: "house-model"}})
    async with running_hypotez(settings, openai_fake) as hz:
        listed = await _model_list(hz)
        assert "`qwen-ft`" in listed
        assert "`house-model`" in listed
        assert "/srv" not in listed
        assert "/home" not in listed

        offered = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
        assert sorted((c["name"], c["value"]) for c in offered.choices) == [
            ("house-model", "house-model"),
            ("qwen-ft", "qwen-ft"),
        ]

        about = await hz.send(slash("about"))
        fields = {f["name"]: f["value"] for f in about.embeds[0]["fields"]}
        assert fields["Chat model"] == "`qwen-ft`"

        use = _texts(await hz.send(slash("model", {"name": "house-model"}, subcommand="use", user=ADMIN_MEMBER)))
        assert "now talks with `house-model`" in use
        assert "/home" not in use
        here = await hz.services.guild_settings.effective(GUILD_ID, CHANNEL_ID)
        assert here.active_model == aliased  # the id is what is stored and sent to the server

        openai_fake.reply_with(lambda messages, model: f"served by {model}")
        answered = await hz.send(slash("chat", {"message": "hi", "model": "qwen-ft"}))
        assert answered.original_message is not None
        assert openai_fake.requests[-1].json["model"] == served
        # An unknown name is refused by the name it was given, and a path is never echoed whole.
        wrong = _texts(await hz.send(slash("chat", {"message": "hi", "model": "/etc/other/model-x"})))
        assert "`model-x` is not a model this server can use" in wrong
        assert "/etc" not in wrong
