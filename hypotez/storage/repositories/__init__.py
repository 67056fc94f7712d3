"""Typed data access, one module per aggregate.  Plugins and ``ml/`` call these; no SQL lives anywhere else.

``from hypotez.storage.repositories import X`` finds every repository and value type here.
"""

from __future__ import annotations

from hypotez.storage.repositories.arena import AlreadyVotedError, ArenaRepository, MatchClosedError, RecordedVote
from hypotez.storage.repositories.audit import AuditFilter, AuditLog
from hypotez.storage.repositories.cooldowns import CooldownRepository, CooldownVerdict
from hypotez.storage.repositories.corrections import CorrectionExamples, CorrectionRepository
from hypotez.storage.repositories.datasets import DatasetCounts, DatasetOverview, DatasetRepository, StoredExample
from hypotez.storage.repositories.evaluation import EvaluationRepository
from hypotez.storage.repositories.feedback import FeedbackRepository, ModelFeedbackStats
from hypotez.storage.repositories.jobs import JobRepository, ReportedEvent, ReportedStatus
from hypotez.storage.repositories.preferences import PreferenceRepository
from hypotez.storage.repositories.privacy import ForgetReport, MemberData, PrivacyRepository, Scope
from hypotez.storage.repositories.registered_models import RegisteredModelRepository
from hypotez.storage.repositories.replies import MessagePart, ReplyRepository
from hypotez.storage.repositories.reviews import (
    CuratorStats,
    Decision,
    ReviewContext,
    ReviewPolicy,
    ReviewRepository,
    ReviewStats,
)
from hypotez.storage.repositories.settings import EffectiveSettings, GuildSettingsRepository
from hypotez.storage.repositories.transcripts import CorrectedTranscript, TranscriptRepository
from hypotez.storage.repositories.usage import UsageRepository, UsageRow
from hypotez.storage.repositories.vocabulary import StoredTerm, VocabularyRepository

__all__ = [
    "AlreadyVotedError",
    "ArenaRepository",
    "AuditFilter",
    "AuditLog",
    "CooldownRepository",
    "CooldownVerdict",
    "CorrectedTranscript",
    "CorrectionExamples",
    "CorrectionRepository",
    "CuratorStats",
    "DatasetCounts",
    "DatasetOverview",
    "DatasetRepository",
    "Decision",
    "EffectiveSettings",
    "EvaluationRepository",
    "FeedbackRepository",
    "ForgetReport",
    "GuildSettingsRepository",
    "JobRepository",
    "MatchClosedError",
    "MemberData",
    "MessagePart",
    "ModelFeedbackStats",
    "PreferenceRepository",
    "PrivacyRepository",
    "RecordedVote",
    "RegisteredModelRepository",
    "ReplyRepository",
    "ReportedEvent",
    "ReportedStatus",
    "ReviewContext",
    "ReviewPolicy",
    "ReviewRepository",
    "ReviewStats",
    "Scope",
    "StoredExample",
    "StoredTerm",
    "TranscriptRepository",
    "UsageRepository",
    "UsageRow",
    "VocabularyRepository",
]
