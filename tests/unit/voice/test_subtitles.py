"""Transcripts as SubRip, WebVTT and plain text."""

from __future__ import annotations

import re

import pytest

from hypotez.voice.stt import Segment
from hypotez.voice.subtitles import timestamp, to_srt, to_text, to_vtt

SEGMENTS = (
    Segment(start=0.0, end=1.5, text=" Hello everyone."),
    Segment(start=1.5, end=3.25, text="The meeting starts at nine."),
    Segment(start=3.3, end=3.4, text="   "),  # whisper can return an empty segment: no cue for it
    Segment(start=3725.0424, end=3727.9996, text="An hour later,\n\nstill talking."),
)


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.5, "00:00:01,500", "00:00:01.500"),
        (59.9999, "00:01:00,000", "00:01:00.000"),
        (3725.042, "01:02:05,042", "01:02:05.042"),
        (-0.2, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds: float, srt: str, vtt: str) -> None:
    assert timestamp(seconds) == srt
    assert timestamp(seconds, separator=".") == vtt


def test_srt() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello everyone.\n"
        "\n"
        "2\n00:00:01,500 --> 00:00:03,250\nThe meeting starts at nine.\n"
        "\n"
        "3\n01:02:05,042 --> 01:02:08,000\nAn hour later,\nstill talking.\n"
    )


def test_vtt() -> None:
    vtt = to_vtt(SEGMENTS)
    assert vtt.startswith("WEBVTT\n\n")
    cues = vtt.split("\n\n")[1:]
    assert len(cues) == 3
    assert cues[0] == "00:00:00.000 --> 00:00:01.500\nHello everyone."
    assert cues[2] == "01:02:05.042 --> 01:02:08.000\nAn hour later,\nstill talking.\n"
    for cue in cues:
        assert re.fullmatch(r"\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}\n(.+\n?)+", cue)


def test_text() -> None:
    assert to_text(SEGMENTS) == "Hello everyone. The meeting starts at nine. An hour later, still talking."


def test_nothing_said() -> None:
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"
    assert to_text([]) == ""
