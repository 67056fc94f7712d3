"""Transcripts as SubRip (``.srt``), WebVTT (``.vtt``) or plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.voice.stt import Segment

__all__ = ["timestamp", "to_srt", "to_text", "to_vtt"]


def timestamp(seconds: float, *, separator: str = ",") -> str:
    """``1.5`` → ``"00:00:01,500"`` (SubRip); ``separator="."`` gives WebVTT's ``"00:00:01.500"``."""
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats: keep each cue's text on non-empty lines.
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def to_srt(segments: Sequence[Segment]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = [
        f"{number}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{_cue_text(s.text)}\n"
        for number, s in enumerate((s for s in segments if s.text.strip()), start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: Sequence[Segment]) -> str:
    """WebVTT: the ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``."""
    cues = [
        f"{timestamp(s.start, separator='.')} --> {timestamp(s.end, separator='.')}\n{_cue_text(s.text)}\n"
        for s in segments
        if s.text.strip()
    ]
    return "\n".join(["WEBVTT\n", *cues])


def to_text(segments: Sequence[Segment]) -> str:
    """The words alone, one segment after the other on one line."""
    return " ".join(word for s in segments for word in s.text.split())
