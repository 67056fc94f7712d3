"""``/test`` (the original ``test`` / ``predict`` / ``handle_errors``): a model on test cases, or two models
side by side; reports are attached and kept in the server's ``reports/`` area, and every run in the database.

``job:`` evaluates on a training job's own examples: the held-out ones (generalisation) apart from the training
ones (memorisation).  ``scorer:judge`` has an LLM judge score every answer by a rubric."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.assistant import Assistant
from hypotez.ml.charts import win_loss_chart_png
from hypotez.ml.evaluation import (
    HELD_OUT,
    MAX_CASES,
    MAX_TRAINING_CASES,
    TRAINING,
    EvalReport,
    TestCase,
    cases_from_records,
    compare,
    evaluate,
    failure_lines,
    parse_test_data,
    sample_evenly,
)
from hypotez.ml.jobs import JobTracker
from hypotez.ml.judge import MAX_RUBRIC, Judge
from hypotez.permissions import Caller
from hypotez.plugins._attachments import read_text_attachment
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.plugins._deadlines import finish
from hypotez.plugins.jobs import job_autocomplete
from hypotez.storage.files import REPORTS, DataDirectory
from hypotez.storage.models import EvaluationRun, TrainingJob
from hypotez.storage.repositories import AuditLog, EvaluationRepository
from hypotez.storage.repositories.evaluation import TRAIN, VALIDATION
from hypotez.text import MESSAGE_LIMIT

loader = lightbulb.Loader()

#: Largest test-data attachment read for /test.
TEST_FILE_LIMIT = 5 * 1024 * 1024
#: Where the failures' lines stop in the answer (the rest of the 2,000 characters is the summary).
_ANSWER_LIMIT = MESSAGE_LIMIT - 20

BOTH = "both"


@dataclass(slots=True)
class _Cases:
    """What to run: cases by part (``None``: plain test data), what they are called, and the job they come from."""

    groups: list[tuple[str | None, list[TestCase]]]
    data: str
    job: TrainingJob | None = None
    #: A note for the answer (a part the job does not have, a sample of its training examples).
    notes: tuple[str, ...] = ()


def _job_number(value: str) -> int:
    text = value.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidInputError(f"“{value[:50]}” is not a job number; pick one from the list.")
    return int(text)


async def _own_job(jobs: JobTracker, caller: Caller, value: str) -> TrainingJob:
    """The job ``value`` names, when it is this server's."""
    number = _job_number(value)
    try:
        job = await jobs.get(number)
    except NotFoundError:
        job = None
    if job is None or job.guild_id != caller.guild_id:
        raise NotFoundError("training job", value, f"There is no training job #{number} in this server.")
    return job


async def _job_cases(
    evaluation: EvaluationRepository, jobs: JobTracker, caller: Caller, value: str, split: str
) -> _Cases:
    job = await _own_job(jobs, caller, value)
    counts = await evaluation.job_example_counts(job.id)
    if not counts:
        raise InvalidInputError(
            f"Training job #{job.id} kept no examples to evaluate on (it was started before they were kept)."
        )
    notes: list[str] = []
    groups: list[tuple[str | None, list[TestCase]]] = []
    if split in (BOTH, HELD_OUT):
        held = cases_from_records(await evaluation.job_examples(job.id, VALIDATION))
        if len(held) > MAX_CASES:
            notes.append(f"Generalisation is measured on {MAX_CASES} of the {len(held)} held-out examples.")
            held = sample_evenly(held, MAX_CASES)
        if held:
            groups.append((HELD_OUT, held))
        elif split == HELD_OUT:
            raise InvalidInputError(
                f"Training job #{job.id} held out no examples: start it with `/train validation:` (e.g. 0.2) to keep "
                "some it never sees, and measure generalisation on them."
            )
        else:
            notes.append(
                f"Job #{job.id} held out no examples, so this measures memorisation only: train with "
                "`/train validation:` (e.g. 0.2) to measure generalisation too."
            )
    if split in (BOTH, TRAINING):
        trained = cases_from_records(await evaluation.job_examples(job.id, TRAIN))
        sample = sample_evenly(trained, MAX_TRAINING_CASES)
        if len(sample) < len(trained):
            notes.append(f"Memorisation is measured on {len(sample)} of the {len(trained)} training examples.")
        if sample:
            groups.append((TRAINING, sample))
    if not groups:
        raise InvalidInputError(f"Training job #{job.id} kept no examples that can be asked as test cases.")
    described = {BOTH: "held-out and training examples", HELD_OUT: "held-out examples", TRAINING: "training examples"}
    return _Cases(groups, f"job #{job.id} {described[split]}", job, tuple(notes))


async def _test_cases(
    data: str | None,
    file: hikari.Attachment | None,
    job: str | None,
    split: str,
    *,
    evaluation: EvaluationRepository,
    jobs: JobTracker,
    caller: Caller,
) -> _Cases:
    given = [x for x in (data, file, job) if x is not None]
    if len(given) != 1:
        raise InvalidInputError(
            "Give the test data either inline as `data` (JSON), as a `file` (JSONL), or a training `job` to "
            "evaluate on its own examples — one of the three."
        )
    if job is not None:
        return await _job_cases(evaluation, jobs, caller, job, split)
    if split != BOTH:
        raise InvalidInputError("`split` chooses among a training job's examples: give it with `job`.")
    if file is not None:
        return _Cases([(None, parse_test_data(await read_text_attachment(file, TEST_FILE_LIMIT)))], file.filename)
    return _Cases([(None, parse_test_data(data or ""))], "inline data")


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


def _scores(report: EvalReport) -> str:
    line = (
        f"exact match {_pct(report.exact_match)} · normalized match {_pct(report.normalized_match)} · "
        f"similarity {_pct(report.similarity)} · errors {report.errors}"
    )
    if report.scorer == "judge":
        mean = report.judge_mean
        line += f" · judge {'—' if mean is None else f'{mean:.1f}/10'}"
        if report.judge_errors:
            line += f" ({report.judge_errors} unscored)"
    return line


_PART_TITLES = {HELD_OUT: "Generalisation — held-out examples", TRAINING: "Memorisation — training examples"}


def _summary_lines(report: EvalReport, name: str | None = None) -> list[str]:
    """``name``: the model as members know it (``Assistant.label``: never a path on the operator's machine)."""
    lines = [f"**{name or report.model}** on {len(report.predictions)} cases", _scores(report)]
    splits = report.splits()
    for split in splits:
        part = report.part(split)
        lines.append(f"{_PART_TITLES.get(split, split)} ({len(part.predictions)}): {_scores(part)}")
    if HELD_OUT in splits and TRAINING in splits:
        held, trained = report.part(HELD_OUT).normalized_match, report.part(TRAINING).normalized_match
        if held is not None and trained is not None:
            lines.append(f"Gap (training − held-out, normalized match): {(trained - held) * 100:+.0f} points")
    return lines


async def _judged(report: EvalReport, settings: Settings, rubric: str | None) -> None:
    async with Judge.from_settings(settings, rubric=rubric) as judge:
        await judge.judge(report.predictions)
        report.scorer = "judge"
        report.judge = judge.description


def _judge_lines(report: EvalReport, budget: int) -> list[str]:
    """The lowest-scored answers and the judge's reasons, within ``budget`` characters."""
    judged = sorted(report.judged, key=lambda p: p.judge_score or 0.0)[:3]
    lines: list[str] = []
    for prediction in judged:
        reason = " ".join((prediction.judge_reason or "").split())[:120]
        line = f"⚖️ line {prediction.case.line} · {prediction.judge_score:g}/10 · {reason}"
        if sum(len(x) + 1 for x in lines) + len(line) + 1 > budget:
            break
        lines.append(line)
    return lines


test_group = lightbulb.Group("test", "Evaluate a model on test data", **STAFF_IN_SERVERS)

_SPLITS = [
    lightbulb.Choice("held-out and training (both)", BOTH),
    lightbulb.Choice("held-out (generalisation)", HELD_OUT),
    lightbulb.Choice("training (memorisation)", TRAINING),
]


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
        "model", "Model (default: the job's model, else the active one here)", default=None,
        autocomplete=model_autocomplete,
    )  # fmt: skip
    job = lightbulb.string(
        "job", "A training job: evaluate on its own held-out and training examples", default=None,
        autocomplete=job_autocomplete,
    )  # fmt: skip
    split = lightbulb.string("split", "With job: which of its examples", choices=_SPLITS, default=BOTH)
    scorer = lightbulb.string(
        "scorer", "match (against expected answers), or judge (an LLM grades each answer too)",
        choices=[lightbulb.Choice("match", "match"), lightbulb.Choice("judge", "judge")], default="match",
    )  # fmt: skip
    rubric = lightbulb.string(
        "rubric", "With scorer:judge: what the judge grades by", default=None, max_length=MAX_RUBRIC
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        assistant: Assistant,
        data_dir: DataDirectory,
        audit: AuditLog,
        evaluation: EvaluationRepository,
        jobs: JobTracker,
        settings: Settings,
    ) -> None:
        await ctx.defer(ephemeral=True)
        if self.rubric is not None and self.scorer != "judge":
            raise InvalidInputError("A `rubric` is for the judge: give it with `scorer:judge`.")
        if self.scorer == "judge" and not settings.judge_model:
            Judge.from_settings(settings)  # refused with the settings to set
        cases = await _test_cases(
            self.data, self.file, self.job, self.split, evaluation=evaluation, jobs=jobs, caller=caller
        )
        model = self.model or await _default_model(assistant, caller, cases.job)
        model = await assistant.require_model(caller.guild_id, model) or model
        backend = await assistant.backend_for(caller.guild_id, model)
        parts = await asyncio.gather(*(evaluate(backend, model, group, split=split) for split, group in cases.groups))
        report = EvalReport(model, [p for part in parts for p in part.predictions])
        if self.scorer == "judge":
            await _judged(report, settings, self.rubric)
        content = report.jsonl()
        path = await _save_report(data_dir, caller.guild_id, _report_name("test", assistant.label(model)), content)
        summary = report.summary() | {"data": cases.data}
        await evaluation.add_run(
            EvaluationRun(
                guild_id=caller.guild_id,
                requested_by=caller.user_id,
                kind="run",
                model=model,
                job_id=cases.job.id if cases.job else None,
                scorer=report.scorer,
                summary=summary,
                cases=[p.as_record() for p in report.predictions],
                report_path=path,
            )
        )
        await audit.record("test.run", guild_id=caller.guild_id, actor_id=caller.user_id, target=model, details=summary)
        head = [*_summary_lines(report, assistant.label(model)), *cases.notes]
        footer = f"Report kept as `{path}` (every case with its expected answer and what the model said)."
        failures = report.failures
        if failures:
            head.append(f"**{len(failures)} failures** (expected vs got):")
        budget = _ANSWER_LIMIT - sum(len(x) + 1 for x in head) - len(footer) - 1
        if report.scorer == "judge":
            judge_lines = _judge_lines(report, budget // 3)
            head += judge_lines
            budget -= sum(len(x) + 1 for x in judge_lines)
        lines = [*head, *failure_lines(failures, budget=max(budget, 0)), footer]
        await finish(
            ctx,
            "\n".join(lines)[:MESSAGE_LIMIT],
            attachments=[hikari.Bytes(content.encode("utf-8"), path.rsplit("/", 1)[-1])],
        )


async def _default_model(assistant: Assistant, caller: Caller, job: TrainingJob | None) -> str:
    if job is None:
        return await assistant.active_model(caller.guild_id, caller.channel_id)
    if job.result_model:
        return job.result_model
    raise InvalidInputError(
        f"Training job #{job.id} has no model yet (it is {job.status}); name a `model` to evaluate on its examples."
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
    job = lightbulb.string(
        "job", "A training job: compare on its held-out examples", default=None, autocomplete=job_autocomplete
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        assistant: Assistant,
        data_dir: DataDirectory,
        audit: AuditLog,
        evaluation: EvaluationRepository,
        jobs: JobTracker,
    ) -> None:
        await ctx.defer(ephemeral=True)
        split = HELD_OUT if self.job is not None else BOTH
        cases = await _test_cases(
            self.data, self.file, self.job, split, evaluation=evaluation, jobs=jobs, caller=caller
        )
        [(part, group)] = cases.groups
        model_a = await assistant.require_model(caller.guild_id, self.model_a) or self.model_a
        model_b = await assistant.require_model(caller.guild_id, self.model_b) or self.model_b
        name_a, name_b = assistant.label(model_a), assistant.label(model_b)  # never a path on the operator's machine
        comparison = await compare(
            await assistant.backend_for(caller.guild_id, model_a),
            model_a,
            await assistant.backend_for(caller.guild_id, model_b),
            model_b,
            group,
            data=cases.data,
            split=part,
        )
        wins_a, wins_b, ties = comparison.tally()
        by_tier = comparison.wins_by_tier()
        report = comparison.jsonl()
        path = await _save_report(data_dir, caller.guild_id, _report_name("compare", f"{name_a}-vs-{name_b}"), report)
        chart = await asyncio.to_thread(
            win_loss_chart_png, name_a, name_b, wins_a, wins_b, ties, data=cases.data, by_tier=by_tier
        )
        summary = comparison.summary()
        await evaluation.add_run(
            EvaluationRun(
                guild_id=caller.guild_id,
                requested_by=caller.user_id,
                kind="compare",
                model=f"{model_a} vs {model_b}"[:300],
                job_id=cases.job.id if cases.job else None,
                scorer="match",
                summary=summary,
                cases=[],
                report_path=path,
            )
        )
        await audit.record(
            "test.compare",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=f"{model_a} vs {model_b}",
            details={"wins_a": wins_a, "wins_b": wins_b, "ties": ties, "wins_by_tier": by_tier, "data": cases.data},
        )
        lines = [
            f"On {cases.data}:",
            *_summary_lines(comparison.a, name_a),
            *_summary_lines(comparison.b, name_b),
            f"`{name_a}` better on {wins_a}{_tiers(by_tier['a'])}, "
            f"`{name_b}` better on {wins_b}{_tiers(by_tier['b'])}, ties {ties}.",
            "Wins by exact match first, then normalized match; similarity only breaks the tie of two wrong answers.",
            f"Side-by-side report kept as `{path}`.",
        ]
        await finish(
            ctx,
            "\n".join(lines)[:MESSAGE_LIMIT],
            attachments=[
                hikari.Bytes(report.encode("utf-8"), path.rsplit("/", 1)[-1]),
                hikari.Bytes(chart, "comparison.png"),
            ],
        )


_TIER_NAMES = {"exact": "exact", "normalized": "normalized", "similarity": "closer", "error": "other failed"}


def _tiers(counts: dict[str, int]) -> str:
    """`` (exact 2 · normalized 1)``: how a model's wins were decided; empty without wins."""
    shown = [f"{_TIER_NAMES[tier]} {count}" for tier, count in counts.items() if count]
    return f" ({' · '.join(shown)})" if shown else ""


loader.command(test_group)
