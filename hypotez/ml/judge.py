"""An LLM judge for open-ended answers: any OpenAI-compatible chat model reads a rubric, the conversation, the
reference answer (when there is one) and the answer to grade, and answers with a score from 1 to 10 and a reason.

A judge that answers something else than the JSON asked for gets a clear error on that case alone; the run goes
on.  At most ``concurrency`` cases are judged at a time, all on the event loop's I/O (nothing blocks it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from hypotez.errors import HypotezError, InvalidInputError
from hypotez.ml.chat import ChatBackend, ChatMessage, OpenAICompatibleBackend
from hypotez.text import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.config import Settings
    from hypotez.ml.evaluation import Prediction

__all__ = ["DEFAULT_RUBRIC", "MAX_RUBRIC", "MAX_SCORE", "MIN_SCORE", "Judge", "Verdict", "parse_verdict"]

_LOGGER = logging.getLogger(__name__)

MIN_SCORE = 1
MAX_SCORE = 10
#: Longest rubric accepted (characters).
MAX_RUBRIC = 2000

DEFAULT_RUBRIC = (
    "Grade how well the answer serves the user's last message. Correctness comes first: an answer that "
    "contradicts the reference answer, or states something false, scores low however well it is written. Then "
    "completeness and relevance: it answers what was asked, without padding. Then clarity. A reference answer, "
    "when given, shows what a right answer says; other wording that says the same is just as good."
)

_INSTRUCTIONS = (
    f"Reply with one JSON object and nothing else: "
    f'{{"score": <an integer from {MIN_SCORE} (useless) to {MAX_SCORE} (excellent)>, '
    f'"reason": "<one or two sentences>"}}'
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's score and reason for one answer, or the error that left it without one."""

    score: float | None
    reason: str | None = None
    error: str | None = None


def _shown(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's answer: a JSON object with a numeric ``score`` (1-10) and a ``reason`` — alone,
    in a code fence, or after some words.  Anything else is a verdict with an error saying what was wrong."""
    stripped = _FENCE.sub("", text.strip())
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    for start in (i for i, c in enumerate(stripped) if c == "{"):
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except ValueError:
            continue
        if isinstance(value, dict) and "score" in value:
            found = cast("dict[str, Any]", value)
            break
    if found is None:
        return Verdict(None, error=f"the judge did not answer with the JSON asked for (it said: “{_shown(text)}”)")
    raw = found["score"]
    score: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        score = float(raw)
    elif isinstance(raw, str):
        try:
            score = float(raw.strip())
        except ValueError:
            score = None
    if score is None or not math.isfinite(score):
        return Verdict(None, error=f"the judge's score is not a number ({_shown(str(raw), 30)})")
    if not MIN_SCORE <= score <= MAX_SCORE:
        return Verdict(None, error=f"the judge's score {score:g} is outside {MIN_SCORE}-{MAX_SCORE}")
    reason = found.get("reason")
    return Verdict(score, str(reason).strip()[:1000] if reason is not None else None)


def _judge_messages(rubric: str, prediction: Prediction) -> list[ChatMessage]:
    conversation = "\n".join(f"{m['role']}: {m['content']}" for m in prediction.case.messages)
    parts = [f"## Conversation\n{conversation}"]
    if prediction.case.expected is not None:
        parts.append(f"## Reference answer\n{prediction.case.expected}")
    parts.append(f"## Answer to grade\n{prediction.output or ''}")
    return [
        {"role": "system", "content": f"You are a strict, fair grader.\n\nRubric: {rubric}\n\n{_INSTRUCTIONS}"},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


class Judge:
    """Scores answers with a chat model (``model`` on ``backend``) by a rubric."""

    def __init__(
        self,
        backend: ChatBackend,
        model: str,
        *,
        rubric: str | None = None,
        concurrency: int = 4,
        owns_backend: bool = False,
        secrets: Sequence[str | None] = (),
    ) -> None:
        rubric = (rubric or "").strip() or DEFAULT_RUBRIC
        if len(rubric) > MAX_RUBRIC:
            raise InvalidInputError(f"The rubric is {len(rubric):,} characters long; at most {MAX_RUBRIC:,}.")
        self.backend = backend
        self.model = model
        self.rubric = rubric
        self._semaphore = asyncio.Semaphore(max(concurrency, 1))
        self._owns_backend = owns_backend
        self._secrets = list(secrets)

    @classmethod
    def from_settings(cls, settings: Settings, *, rubric: str | None = None) -> Judge:
        """The judge the settings name (``judge_model``, on ``judge_base_url`` with ``judge_api_key``; without a
        URL of its own, the chat backend's server and key).  Refused when no judge model is set."""
        if not settings.judge_model:
            raise InvalidInputError(
                "No judge model is set: set `judge_model` (HYPOTEZ_JUDGE_MODEL), and `judge_base_url` and "
                "`judge_api_key` for a server other than the chat backend's, to score with `scorer:judge`."
            )
        if settings.judge_base_url:
            # Another server: never send it the chat backend's key.
            key = settings.judge_api_key.get_secret_value() if settings.judge_api_key else None
            base_url: str | None = settings.judge_base_url
        else:
            secret = settings.judge_api_key or settings.openai_api_key
            key = secret.get_secret_value() if secret else None
            base_url = settings.openai_base_url
        backend = OpenAICompatibleBackend(
            base_url=base_url, api_key=key, timeout=settings.judge_timeout, max_retries=settings.chat_max_retries
        )
        return cls(
            backend,
            settings.judge_model,
            rubric=rubric,
            concurrency=settings.judge_concurrency,
            owns_backend=True,
            secrets=[key],
        )

    @property
    def description(self) -> dict[str, Any]:
        """What the report says about the judge (no server, no key)."""
        return {"model": self.model, "rubric": self.rubric, "scale": [MIN_SCORE, MAX_SCORE]}

    async def verdict(self, prediction: Prediction) -> Verdict:
        """The judge's verdict on one answer (an answer that failed to run is not judged)."""
        if prediction.output is None:
            return Verdict(None, error="no answer to judge")
        async with self._semaphore:
            try:
                result = await self.backend.complete(_judge_messages(self.rubric, prediction), self.model)
            except HypotezError as exc:
                return Verdict(None, error=f"the judge failed: {redact(exc.user_message, secrets=self._secrets)}")
            except Exception as exc:  # one case's failure is recorded; the others are still judged
                _LOGGER.exception("judging case %s failed", prediction.case.line)
                return Verdict(None, error=f"the judge failed (unexpected error {type(exc).__name__})")
        verdict = parse_verdict(result.content)
        if verdict.error is not None:
            return Verdict(None, error=redact(verdict.error, secrets=self._secrets, limit=None))
        return verdict

    async def judge(self, predictions: Sequence[Prediction]) -> None:
        """Judge every answer (a case that failed to run has none), at most ``concurrency`` at a time; scores,
        reasons and errors are set on each."""
        answered = [p for p in predictions if p.error is None and p.output is not None]
        verdicts = await asyncio.gather(*(self.verdict(p) for p in answered))
        for prediction, verdict in zip(answered, verdicts, strict=True):
            prediction.judge_score = verdict.score
            prediction.judge_reason = verdict.reason
            prediction.judge_error = verdict.error

    async def close(self) -> None:
        if self._owns_backend:
            await self.backend.close()

    async def __aenter__(self) -> Judge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
