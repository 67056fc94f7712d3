"""The data-directory sandbox's second lines of defence, each check on its own: a path a member gives (encoded,
drive letters, dangling links), archive names, and what autocomplete offers (never ``tmp/``, dot-directories,
linked directories; not ``archive/`` to ``/archive create``; at most :data:`SCAN_LIMIT` entries looked at).

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.storage.files import ARCHIVE, DataDirectory, human_size, safe_filename
from hypotez.storage.files.datadir import SCAN_LIMIT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def area(tmp_path: Path) -> DataDirectory:
    """A guild's area with one file, ``exports/a.jsonl``."""
    root = tmp_path / "data"
    directory = DataDirectory(root).for_guild(7)
    (directory.root / "exports").mkdir(parents=True)
    (directory.root / "exports" / "a.jsonl").write_text("{}\n")
    return directory


# ------------------------------------------------------------------------------------------------ member paths

ENCODED_OUTSIDE = [
    "%00etc",  # a NUL byte, encoded
    "%2Fetc%2Fpasswd",  # a leading slash
    "%7E/secret.txt",  # a leading ~
    "C%3A%5CWindows",  # a drive letter and a backslash
    "c%3Awin.ini",  # a drive letter alone
    "exports/%2e%2e/%2e%2e/x",  # .. in the middle
    "%2e%2e%5Cx",  # .. then a backslash
    "%252e%252e%252fx",  # encoded twice
    "%25252e%25252e%25252fx",  # three times
    "%2525252e%2525252e%2525252fx",  # four times: still encoded after three rounds
    "%2525252541",  # four times, whatever it decodes to
]


@pytest.mark.parametrize("raw", ENCODED_OUTSIDE)
def test_percent_encoded_escapes_are_refused_each_alone(area: DataDirectory, raw: str) -> None:
    with pytest.raises(InvalidInputError, match="Percent-encoded paths are not accepted"):
        area.parts(raw)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("100%25 done.txt", ["100%25 done.txt"]),  # decodes to a harmless name: taken as it is typed
        ("a%2Fb", ["a%2Fb"]),  # an encoded slash in the middle stays part of one name
        ("50%", ["50%"]),
        ("%zz", ["%zz"]),
    ],
)
def test_percent_signs_in_harmless_names_are_taken_literally(area: DataDirectory, name: str, parts: list[str]) -> None:
    assert area.parts(name) == parts
    (area.root / name).write_text("x")
    assert area.resolve_file(name, limit=10).relative == name


@pytest.mark.parametrize("raw", ["C:", "c:x.txt", "Z:/x", "C:\\Windows\\win.ini", "/etc/passwd", "\\\\server\\x", "~x"])
def test_absolute_and_drive_letter_paths_are_refused(area: DataDirectory, raw: str) -> None:
    with pytest.raises(InvalidInputError, match="is an absolute path"):
        area.parts(raw)


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("exports\\a.jsonl", ["exports", "a.jsonl"]),
        ("  ./exports//./a.jsonl  ", ["exports", "a.jsonl"]),
        ("1:2", ["1:2"]),  # a colon after a digit is not a drive letter
        ("ab:c", ["ab:c"]),
        ("..x", ["..x"]),
        ("x..", ["x.."]),
    ],
)
def test_relative_paths_are_split(area: DataDirectory, raw: str, parts: list[str]) -> None:
    assert area.parts(raw) == parts


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("   ", "Give a path relative to this server's files."),
        (".", "not the directory itself"),
        ("./", "not the directory itself"),
        ("a/../b", "contains `..`"),
        ("a\x00b", "contains a NUL byte"),
    ],
)
def test_empty_and_parent_paths_are_refused(area: DataDirectory, raw: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        area.parts(raw)


def test_a_dangling_link_is_nothing_and_never_listed(area: DataDirectory) -> None:
    (area.root / "exports" / "gone.jsonl").symlink_to(area.root / "exports" / "deleted.jsonl")
    with pytest.raises(NotFoundError, match=r"There is nothing at `exports/gone\.jsonl`"):
        area.resolve_file("exports/gone.jsonl", limit=1000)
    (area.root / "dangling-dir").symlink_to(area.root / "no-such-dir")
    with pytest.raises(NotFoundError, match="There is nothing at"):
        area.resolve_directory("dangling-dir")
    assert area.suggest_files("") == ["exports/a.jsonl"]
    assert area.suggest_directories("") == ["exports"]


def test_a_control_character_is_not_echoed(area: DataDirectory) -> None:
    with pytest.raises(NotFoundError) as caught:
        area.resolve_file("no\x07such`file", limit=10)
    assert "`no?such'file`" in str(caught.value)
    with pytest.raises(NotFoundError) as long_name:
        area.resolve_file("x" * 300, limit=10)
    assert "x" * 199 + "…" in str(long_name.value)
    assert "x" * 200 not in str(long_name.value)


def test_files_of_exactly_the_limit_are_served(area: DataDirectory) -> None:
    (area.root / "exports" / "ten.bin").write_bytes(b"0123456789")
    assert area.resolve_file("exports/ten.bin", limit=10).size == 10
    with pytest.raises(InvalidInputError, match="files over 9 bytes cannot be sent"):
        area.resolve_file("exports/ten.bin", limit=9)


def test_directories_inside_an_area_only(area: DataDirectory) -> None:
    (area.root / "datasets" / "run").mkdir(parents=True)
    assert area.resolve_directory("run", area="datasets") == area.root / "datasets" / "run"
    (area.root / "datasets" / "up").symlink_to(area.root / "exports")
    with pytest.raises(InvalidInputError, match="leads outside `datasets/`"):
        area.resolve_directory("up", area="datasets")
    with pytest.raises(InvalidInputError, match="is not a directory"):
        area.resolve_directory("exports/a.jsonl")
    (area.root / "self").symlink_to(area.root)
    with pytest.raises(InvalidInputError, match="not the directory itself"):
        area.resolve_directory("self")


# ------------------------------------------------------------------------------------------------ archive names

BAD_ARCHIVE_NAMES = ["sub/x.zip", "sub\\x.zip", "x\x00.zip", ".x.zip", "x.zip.txt", "x.ZIP", "x"]


@pytest.mark.parametrize("name", BAD_ARCHIVE_NAMES)
def test_each_archive_name_check_alone(area: DataDirectory, name: str) -> None:
    """Each bad name trips one check only, and names an existing file, so only that check refuses it."""
    archive = area.area(ARCHIVE)
    (archive / "sub").mkdir()
    (archive / "sub" / "x.zip").write_bytes(b"PK")
    for existing in ("sub\\x.zip", ".x.zip", "x.zip.txt", "x.ZIP", "x"):
        (archive / existing).write_bytes(b"PK")
    with pytest.raises(InvalidInputError, match="is not an archive name"):
        area.archive_path(name)


def test_an_archive_is_a_plain_zip_file_in_the_archive_area(area: DataDirectory, tmp_path: Path) -> None:
    archive = area.area(ARCHIVE)
    (archive / "ok.zip").write_bytes(b"PK")
    assert area.archive_path("ok.zip") == archive / "ok.zip"
    (tmp_path / "elsewhere.zip").write_bytes(b"PK")
    (archive / "link.zip").symlink_to(tmp_path / "elsewhere.zip")
    (archive / "folder.zip").mkdir()
    for name in ("link.zip", "folder.zip", "missing.zip"):
        with pytest.raises(NotFoundError, match=f"There is no archive called `{name}`"):
            area.archive_path(name)


# ------------------------------------------------------------------------------------------------ autocomplete


def test_autocomplete_never_offers_tmp_dot_or_linked_directories(area: DataDirectory, tmp_path: Path) -> None:
    root = area.root
    for folder in ("tmp/upload", ".git/objects", "datasets/.hidden", "datasets/run", "archive"):
        (root / folder).mkdir(parents=True)
    (root / "tmp" / "upload" / "part.jsonl").write_text("x")
    (root / ".git" / "config").write_text("x")
    (root / "datasets" / ".hidden" / "h.jsonl").write_text("x")
    (root / "datasets" / ".dot.jsonl").write_text("x")
    (root / "datasets" / "run" / "r.jsonl").write_text("x")
    (root / "archive" / "old.zip").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.jsonl").write_text("x")
    (root / "datasets" / "linked").symlink_to(tmp_path / "outside")
    (root / "datasets" / "inner-link").symlink_to(root / "datasets" / "run")
    (root / "datasets" / "to-file.jsonl").symlink_to(root / "datasets" / "run" / "r.jsonl")
    assert area.suggest_directories("") == ["datasets", "exports", "datasets/run"]
    assert area.suggest_directories("", area="datasets") == ["run"]
    assert area.suggest_files("") == [
        "archive/old.zip",
        "datasets/to-file.jsonl",
        "exports/a.jsonl",
        "datasets/run/r.jsonl",
    ]
    assert area.dataset_files(root / "datasets", {".jsonl"}) == [
        root / "datasets" / "to-file.jsonl",
        root / "datasets" / "run" / "r.jsonl",
    ]


def test_archive_create_suggestions_leave_out_the_archive_area(area: DataDirectory) -> None:
    """``/archive create`` asks for directories of the whole area: neither the archive area nor anything in it
    is offered (nor ``tmp/``); a folder merely called ``archive`` deeper down, or inside another area, is."""
    for folder in ("archive/inner", "tmp/archive", "archived-runs", "datasets/archive"):
        (area.root / folder).mkdir(parents=True)
    assert area.suggest_directories("arch") == ["archived-runs", "datasets/archive"]
    assert area.suggest_directories("arch", area="datasets") == ["archive"]


def test_suggestions_match_anywhere_prefixes_first_then_shallow_then_by_name(area: DataDirectory) -> None:
    for folder in ("b-run", "a/run", "run-z", "Run-a", "x/y/run"):
        (area.root / folder).mkdir(parents=True)
    assert area.suggest_directories("RUN") == ["Run-a", "run-z", "b-run", "a/run", "x/y/run"]
    assert area.suggest_directories(" run ", limit=2) == ["Run-a", "run-z"]
    assert area.suggest_directories("a\\r") == ["a/run"]


def test_the_scan_stops_after_scan_limit_entries(area: DataDirectory) -> None:
    root = area.root / "datasets"
    root.mkdir()
    (root / "zz").mkdir()
    (root / "zz" / "needle.jsonl").write_text("x")
    # The walk looks at the top (datasets/, exports/: 2 entries), then datasets/ (zz/ and the files), then zz/:
    # with SCAN_LIMIT - 3 files, exactly SCAN_LIMIT entries are seen before zz/, which is still looked at.
    for index in range(SCAN_LIMIT - 3):
        (root / f"f{index:05}.txt").touch()
    assert area.suggest_files("needle") == ["datasets/zz/needle.jsonl"]
    (root / "one-more.txt").touch()  # one entry more: the scan stops before zz/
    assert area.suggest_files("needle") == []
    # Everything is looked at where no limit applies (archiving, dataset files).
    assert len(area.dataset_files(root, {".txt", ".jsonl"})) == SCAN_LIMIT - 1


def test_a_walk_with_a_small_limit(area: DataDirectory) -> None:
    base = area.root / "w"
    (base / "d1").mkdir(parents=True)
    (base / "d2").mkdir()
    (base / "f1").touch()
    (base / "d1" / "x").touch()
    (base / "d2" / "y").touch()
    walked = area._walk(base, limit=3)  # pyright: ignore[reportPrivateUsage]
    assert [p.relative_to(base).as_posix() for p, _ in walked] == ["d1", "d2", "f1", "d1/x"]
    assert [is_dir for _, is_dir in walked] == [True, True, False, False]
    assert len(area._walk(base, limit=None)) == 5  # pyright: ignore[reportPrivateUsage]
    assert area._walk(base / "f1") == []  # pyright: ignore[reportPrivateUsage]


# ------------------------------------------------------------------------------------------------ names and sizes


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 bytes"),
        (1023, "1,023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (1024**2, "1.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**4, "3072.0 GiB"),
    ],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a b/c?.jsonl", "a_b_c_.jsonl"),
        ("._x_.", "x"),
        ("", "file"),
        ("ok-name_1.txt", "ok-name_1.txt"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
    assert safe_filename("", default="archive") == "archive"


def test_safe_filename_cuts_at_the_byte_limit() -> None:
    exact = "a" * 120
    assert safe_filename(exact) == exact
    assert safe_filename("a" * 121) == exact
    assert safe_filename("a" * 116 + ".txt") == "a" * 116 + ".txt"
    assert safe_filename("a" * 200 + ".txt") == "a" * 116 + ".txt"
    # A suffix of 10 bytes is kept; a longer "suffix" is just part of the name.
    assert safe_filename("a" * 200 + ".abcdefghij") == "a" * 109 + ".abcdefghij"
    assert safe_filename("a" * 200 + ".abcdefghijk") == "a" * 120
    assert safe_filename("b" * 200) == "b" * 120
    assert len(safe_filename("ж" * 100).encode()) == 120


def test_hidden_files_are_not_served(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "hypotez.db").write_bytes(b"x")
    (root / "ok.txt").write_text("x")
    directory = DataDirectory(root, hidden=[root / "hypotez.db"])
    with pytest.raises(InvalidInputError, match="is not served"):
        directory.resolve_file("hypotez.db", limit=10)
    assert directory.suggest_files("") == ["ok.txt"]
    assert os.path.samefile(directory.resolve_file("ok.txt", limit=10).path, root / "ok.txt")
