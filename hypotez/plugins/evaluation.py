"""``/test`` (the original ``test`` / ``predict`` / ``handle_errors``): a model on test cases, or two models
side by side; reports are attached and kept in the server's ``reports/`` area."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.ml.assistant import Assistant
from hypotez.ml.charts import win_loss_chart_png
from hypotez.ml.evaluation import EvalReport, TestCase, compare, evaluate, parse_test_data
from hypotez.permissions import Caller
from hypotez.plugins._attachments import read_text_attachment
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.plugins._deadlines import finish
from hypotez.storage.files import REPORTS, DataDirectory
from hypotez.storage.repositories import AuditLog

loader = lightbulb.Loader()

#: Largest test-data attachment read for /test.
TEST_FILE_LIMIT = 5 * 1024 * 1024


async def _test_cases(data: str | None, file: hikari.Attachment | None) -> list[TestCase]:
    if data is not None and file is None:
        return parse_test_data(data)
    if file is not None and data is None:
        return parse_test_data(await read_text_attachment(file, TEST_FILE_LIMIT))
    raise InvalidInputError("Give the test data either inline as `data` (JSON) or as a `file` (JSONL), not both.")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


async def _save_report(data_dir: DataDirectory, guild_id: int | None, name: str, content: str) -> str:
    """Keep the report in the server's ``reports/`` area for later analysis (``/getfile`` serves it there);
    returns its path in that area."""
    area = data_dir.for_guild(guild_id)

    def write() -> str:
        path = area.area(REPORTS) / name
        path.write_text(content, encoding="utf-8")
        return area.relative(path)

    return await asyncio.to_thread(write)


def _report_name(kind: str, model: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:60]
    return f"{kind}-{stamp}-{safe}-{hashlib.sha1(model.encode()).hexdigest()[:6]}.jsonl"  # noqa: S324 - a file name


def _summary_lines(report: EvalReport) -> list[str]:
    return [
        f"**{report.model}** on {len(report.predictions)} cases",
        f"exact match {_pct(report.exact_match)} · normalized match {_pct(report.normalized_match)} · "
        f"similarity {_pct(report.similarity)} · errors {report.errors}",
    ]


test_group = lightbulb.Group("test", "Evaluate a model on test data", **STAFF_IN_SERVERS)


@test_group.register
class TestRun(
    lightbulb.SlashCommand,
    name="run",
    description="Run a model on test data and score it",
    hooks=[require(Capability.TRAIN)],
):
    data = lightbulb.string("data", 'Inline JSON: {"text": ..., "expected": ...} or a list of them', default=None)
    file = lightbulb.attachment("file", "A JSONL file of test cases", default=None)
    model = lightbulb.string(
        "model", "Model (default: the active one here)", default=None, autocomplete=model_autocomplete
    )

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        await ctx.defer(ephemeral=True)
        cases = await _test_cases(self.data, self.file)
        model = self.model or await assistant.active_model(caller.guild_id, caller.channel_id)
        await assistant.require_model(caller.guild_id, model)
        report = await evaluate(await assistant.backend_for(caller.guild_id, model), model, cases)
        path = await _save_report(data_dir, caller.guild_id, _report_name("test", model), report.jsonl())
        await audit.record(
            "test.run", guild_id=caller.guild_id, actor_id=caller.user_id, target=model, details=report.summary()
        )
        lines = _summary_lines(report)
        for prediction in report.predictions[:5]:
            mark = (
                "✅"
                if prediction.normalized
                else ("⚠️" if prediction.error else ("❌" if prediction.normalized is False else "•"))
            )
            shown = prediction.error or (prediction.output or "")
            lines.append(f"{mark} {prediction.case.prompt[:80]} → {shown[:120]}")
        if len(report.predictions) > 5:
            lines.append(f"… {len(report.predictions) - 5} more in the report")
        lines.append(f"Report kept as `{path}` ({len(report.failures)} failures and errors).")
        await finish(
            ctx,
            "\n".join(lines)[:2000],
            attachments=[hikari.Bytes(report.jsonl().encode("utf-8"), path.rsplit("/", 1)[-1])],
        )


@test_group.register
class TestCompare(
    lightbulb.SlashCommand,
    name="compare",
    description="Two models on the same test data",
    hooks=[require(Capability.TRAIN)],
):
    model_a = lightbulb.string("model_a", "First model", autocomplete=model_autocomplete)
    model_b = lightbulb.string("model_b", "Second model", autocomplete=model_autocomplete)
    data = lightbulb.string("data", "Inline JSON test data", default=None)
    file = lightbulb.attachment("file", "A JSONL file of test cases", default=None)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        await ctx.defer(ephemeral=True)
        cases = await _test_cases(self.data, self.file)
        for model in (self.model_a, self.model_b):
            await assistant.require_model(caller.guild_id, model)
        comparison = await compare(
            await assistant.backend_for(caller.guild_id, self.model_a),
            self.model_a,
            await assistant.backend_for(caller.guild_id, self.model_b),
            self.model_b,
            cases,
        )
        wins_a, wins_b, ties = comparison.tally()
        report = comparison.jsonl()
        path = await _save_report(
            data_dir, caller.guild_id, _report_name("compare", f"{self.model_a}-vs-{self.model_b}"), report
        )
        chart = await asyncio.to_thread(win_loss_chart_png, self.model_a, self.model_b, wins_a, wins_b, ties)
        await audit.record(
            "test.compare",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=f"{self.model_a} vs {self.model_b}",
            details={"wins_a": wins_a, "wins_b": wins_b, "ties": ties},
        )
        lines = [
            *_summary_lines(comparison.a),
            *_summary_lines(comparison.b),
            f"`{self.model_a}` better on {wins_a}, `{self.model_b}` better on {wins_b}, ties {ties}.",
            f"Side-by-side report kept as `{path}`.",
        ]
        await finish(
            ctx,
            "\n".join(lines)[:2000],
            attachments=[
                hikari.Bytes(report.encode("utf-8"), path.rsplit("/", 1)[-1]),
                hikari.Bytes(chart, "comparison.png"),
            ],
        )


loader.command(test_group)
