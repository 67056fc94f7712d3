"""More edges of the data-directory sandbox and its archives, from the mutants that survived the first tests: the
exact refusals, the database hidden from the settings, the async entry points, names of archives made in the same
second, manifests, large files, and failures before anything was written.

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hypotez.errors import InvalidInputError, NotFoundError, StorageError
from hypotez.storage.files import DataDirectory, safe_filename
from hypotez.storage.files import archives as archives_module
from hypotez.storage.files.datadir import SCAN_LIMIT


@pytest.fixture
def area(tmp_path: Path) -> DataDirectory:
    directory = DataDirectory(tmp_path / "data").for_guild(7)
    run = directory.root / "datasets" / "run"
    run.mkdir(parents=True)
    (run / "a.txt").write_bytes(b"alpha")
    (run / "b.txt").write_bytes(b"bravo!")
    return directory


# ------------------------------------------------------------------------------------------------ refusals


def test_refusals_are_exact(area: DataDirectory, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as nul:
        area.parts("a\x00")
    assert str(nul.value) == "That path contains a NUL byte; paths cannot contain one."
    with pytest.raises(InvalidInputError) as encoded:
        area.parts("%2e%2e/x")
    assert str(encoded.value) == (
        "Percent-encoded paths are not accepted (that one decodes to a path outside this server's files). "
        "Type the path as it is."
    )
    with pytest.raises(InvalidInputError) as guildless:
        DataDirectory(tmp_path).for_guild(None)
    assert str(guildless.value) == (
        "Files and datasets belong to a server, each server its own; use this command in a server."
    )
    with pytest.raises(ValueError, match=r"^already a guild's area$"):
        area.for_guild(8)
    assert DataDirectory(tmp_path).for_guild(1).root == tmp_path.resolve() / "guilds" / "1"
    with pytest.raises(NotFoundError) as missing:
        area.resolve_file("missing.txt", limit=10)
    assert (missing.value.kind, missing.value.key) == ("file", "missing.txt")
    with pytest.raises(NotFoundError) as no_archive:
        area.archive_path("none.zip")
    assert (no_archive.value.kind, no_archive.value.key) == ("archive", "none.zip")
    (area.root / "big.bin").write_bytes(b"x" * 11)
    with pytest.raises(InvalidInputError) as big:
        area.resolve_file("big.bin", limit=10)
    assert str(big.value) == "`big.bin` is 11 bytes; files over 10 bytes cannot be sent through Discord."


def test_a_file_with_one_other_name_is_refused(area: DataDirectory) -> None:
    os.link(area.root / "datasets" / "run" / "a.txt", area.root / "a-again.txt")
    with pytest.raises(InvalidInputError) as caught:
        area.resolve_file("datasets/run/a.txt", limit=100)
    assert str(caught.value) == (
        "`datasets/run/a.txt` has other names (hard links) that may lie outside this server's files; it is not "
        "served. Copy the file instead of linking it."
    )


def test_names_are_echoed_whole_up_to_200_characters(area: DataDirectory) -> None:
    name = "y" * 200
    with pytest.raises(NotFoundError) as whole:
        area.resolve_file(name, limit=10)
    assert f"`{name}`" in str(whole.value)
    with pytest.raises(NotFoundError) as cut:
        area.resolve_file(name + "z", limit=10)
    assert "`" + "y" * 199 + "…`" in str(cut.value)


def test_an_encoding_four_levels_deep_is_refused_whatever_it_decodes_to(area: DataDirectory) -> None:
    # Three rounds of decoding leave "%41": still encoded, so refused (a fourth round would give a plain "A").
    with pytest.raises(InvalidInputError, match="Percent-encoded paths are not accepted"):
        area.parts("%25252541")
    assert area.parts("%252541") == ["%252541"]  # three levels: decodes to "A", taken as typed


def test_the_database_named_by_the_settings_is_hidden(tmp_path: Path, settings: Any) -> None:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        (data / f"bot.db{suffix}").write_bytes(b"SQLite format 3\x00")
    sqlite = settings.model_copy(
        update={"data_dir": data, "database_url": SecretStr(f"sqlite+aiosqlite:///{data}/bot.db")}
    )
    directory = DataDirectory.from_settings(sqlite)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with pytest.raises(InvalidInputError, match="is not served"):
            directory.resolve_file(f"bot.db{suffix}", limit=100)
    # Elsewhere than SQLite (or in memory) no file of the data directory is the database.
    for url in (
        f"postgresql+asyncpg://u@h/{data}/bot.db",
        "postgresql+asyncpg://u@h/bot.db",
        "sqlite+aiosqlite:///:memory:",
    ):
        other = DataDirectory.from_settings(
            settings.model_copy(update={"data_dir": data, "database_url": SecretStr(url)})
        )
        assert other.resolve_file("bot.db", limit=100).relative == "bot.db"
    # The hidden files stay hidden in a guild's area too, wherever the operator put the database.
    (data / "guilds" / "7").mkdir(parents=True)
    (data / "guilds" / "7" / "in-area.db").write_bytes(b"x")
    inside = DataDirectory(data, hidden=[data / "guilds" / "7" / "in-area.db"]).for_guild(7)
    with pytest.raises(InvalidInputError, match="is not served"):
        inside.resolve_file("in-area.db", limit=100)


# ------------------------------------------------------------------------------------------------ listings


def test_suggestions_sort_case_insensitively_by_lower_case(area: DataDirectory) -> None:
    for folder in ("laba", "lab_b", "LABC"):
        (area.root / folder).mkdir()
    # Lower-cased, "_" sorts before letters ("lab_b" < "laba"); upper-cased it would sort after them.
    assert area.suggest_directories("lab") == ["lab_b", "laba", "LABC"]


def test_at_most_25_suggestions_by_default(area: DataDirectory) -> None:
    for index in range(30):
        (area.root / "many" / f"d{index:02}").mkdir(parents=True)
        (area.root / "many" / f"f{index:02}.txt").touch()
    assert len(area.suggest_directories("many/")) == 25
    assert len(area.suggest_files("many/")) == 25
    assert area.suggest_files("many/", limit=2) == ["many/f00.txt", "many/f01.txt"]


def test_dataset_files_are_those_with_the_suffixes_all_of_them(area: DataDirectory) -> None:
    base = area.root / "datasets"
    (base / "run" / "notes.md").write_text("x")
    (base / "run" / "c.JSONL").write_text("x")
    assert area.dataset_files(base, {".jsonl"}) == [base / "run" / "c.JSONL"]
    for index in range(SCAN_LIMIT + 1):
        (base / f"e{index:05}.csv").touch()
    assert len(area.dataset_files(base, {".csv", ".txt", ".jsonl"})) == SCAN_LIMIT + 1 + 3


def test_the_archive_and_tmp_areas_cannot_be_archived(area: DataDirectory) -> None:
    for inner in ("archive/inner", "tmp/inner"):
        (area.root / inner).mkdir(parents=True)
        (area.root / inner / "x.txt").write_text("x")
        with pytest.raises(InvalidInputError) as caught:
            area.archive_directory_sync((area.root / inner).resolve())
        top = inner.split("/")[0]
        assert str(caught.value) == f"`{inner}` is inside the `{top}/` area; it cannot be archived."


def test_archiving_takes_every_file_past_the_scan_limit(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    for index in range(SCAN_LIMIT):
        (run / f"e{index:05}").touch()
    (run / "zz").mkdir()
    (run / "zz" / "last.txt").write_text("looked at after SCAN_LIMIT entries")
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert len(info.files) == SCAN_LIMIT + 3
    assert "zz/last.txt" in {f.path for f in info.files}
    assert info.kept == []


# ------------------------------------------------------------------------------------------------ async entry points


@pytest.mark.asyncio
async def test_the_async_entry_points_do_what_the_blocking_ones_do(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    assert (await area.file("datasets/run/a.txt", limit=5)).size == 5
    with pytest.raises(InvalidInputError, match="files over 4 bytes"):
        await area.file("datasets/run/a.txt", limit=4)
    assert await area.directory("run", area="datasets") == run
    with pytest.raises(NotFoundError):
        await area.directory("datasets", area="datasets")
    kept = await area.archive_files("k", [("a.txt", run / "a.txt")], source="s", remove_originals=False)
    assert (run / "a.txt").exists()
    assert kept.source == "s"
    moved = await area.archive_files("m", [("b.txt", run / "b.txt")], source="t")
    assert not (run / "b.txt").exists()
    assert [f.path for f in moved.files] == ["b.txt"]
    assert moved.name.startswith("m-")
    assert [a.name for a in await area.archives()] in ([moved.name, kept.name], [kept.name, moved.name])
    one = run / "a.txt"
    assert await area.bundle([one], limit=5, stem="x") == [one]
    assert area.bundle_sync([one], limit=5, stem="x") == [one]
    assert await area.bundle([one], limit=1, stem="tiny") is None


# ------------------------------------------------------------------------------------------------ archives


def test_the_returned_archive_describes_what_was_written(area: DataDirectory, tmp_path: Path) -> None:
    run = area.root / "datasets" / "run"
    before = dt.datetime.now(dt.UTC)
    for info in (
        area.archive_files_sync("f", [("a.txt", run / "a.txt")], source="данные/run", remove_originals=False),
        area.archive_directory_sync(area.resolve_directory("datasets/run")),
    ):
        assert info.size == info.path.stat().st_size
        assert before - dt.timedelta(seconds=1) <= info.created_at <= dt.datetime.now(dt.UTC)
        assert info.files
        [listed] = [a for a in area.list_archives() if a.name == info.name]
        assert listed.path == info.path
        assert listed.created_at == info.created_at
        assert listed.source == info.source
        with zipfile.ZipFile(info.path) as zf:
            raw = zf.read(archives_module.MANIFEST).decode()
            assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        assert raw.startswith('{\n  "source": ')
        assert json.loads(raw)["source"] == info.source
    assert '"source": "данные/run"' in zipfile.ZipFile(area.list_archives()[-1].path).read("manifest.json").decode()


def test_an_archive_member_keeps_its_time_and_a_large_file_its_size(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    when = dt.datetime(2024, 5, 6, 7, 8, 10, tzinfo=dt.UTC).timestamp()
    os.utime(run / "a.txt", (when, when))
    (run / "big.bin").write_bytes(b"z" * (archives_module.CHUNK + 1))
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    with zipfile.ZipFile(info.path) as zf:
        assert zf.getinfo("a.txt").date_time == (2024, 5, 6, 7, 8, 10)
        assert len(zf.read("big.bin")) == archives_module.CHUNK + 1
    assert {f.path: f.size for f in info.files}["big.bin"] == archives_module.CHUNK + 1


def test_archives_in_the_same_second_get_the_next_free_number(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "er" / "archive"  # created, parents and all
    now = dt.datetime.now(dt.UTC)
    for moment in (now, now + dt.timedelta(seconds=1)):
        base = f"stem-{moment:%Y%m%d-%H%M%S}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{base}.zip").touch()
        (folder / f"{base}-2.zip.partial").touch()  # being written by another archive
        (folder / f"{base}-3.zip").touch()
        (folder / f"{base}-4.zip").touch()
    path = archives_module._new_archive_path(folder, "stem")  # pyright: ignore[reportPrivateUsage]
    assert path.name.endswith("-5.zip")
    (tmp_path / "fresh").mkdir()
    fallback = archives_module._new_archive_path(tmp_path / "fresh" / "a" / "b", "...")  # pyright: ignore[reportPrivateUsage]
    assert fallback.parent.is_dir()
    assert fallback.name.startswith("archive-")


def test_archive_names_carry_the_utc_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a local time would be another day
    time.tzset()
    try:
        path = archives_module._new_archive_path(tmp_path, "s")  # pyright: ignore[reportPrivateUsage]
    finally:
        monkeypatch.undo()
        time.tzset()
    stamp = dt.datetime.strptime(path.stem.removeprefix("s-")[:15], "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


def test_members_are_streamed_as_zip64(area: DataDirectory) -> None:
    """Members are written as a stream whose size is not known in advance: each local header carries the ZIP64
    field, so a member past 2 GiB can still be written."""
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    with zipfile.ZipFile(info.path) as zf, info.path.open("rb") as raw:
        for member in zf.infolist():
            if member.filename == archives_module.MANIFEST:
                continue
            raw.seek(member.header_offset)
            header = raw.read(30)
            name_length = int.from_bytes(header[26:28], "little")
            extra_length = int.from_bytes(header[28:30], "little")
            raw.read(name_length)
            assert raw.read(extra_length)[:2] == b"\x01\x00", member.filename  # the ZIP64 extra field's id


def test_a_zip_is_written_under_a_partial_name(area: DataDirectory, monkeypatch: pytest.MonkeyPatch) -> None:
    real_add = archives_module._add_to_zip  # pyright: ignore[reportPrivateUsage]
    written: list[str] = []

    def watching(zf: zipfile.ZipFile, member: Any) -> Any:
        written.append(str(zf.filename))
        return real_add(zf, member)

    monkeypatch.setattr(archives_module, "_add_to_zip", watching)
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert written == [str(info.path) + ".partial"] * 2
    assert not Path(written[0]).exists()


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("odd")])
def test_a_failure_before_the_zip_exists(
    area: DataDirectory, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(archives_module.zipfile, "ZipFile", failing)
    run = area.root / "datasets" / "run"
    with pytest.raises(type(error) if isinstance(error, ValueError) else StorageError) as caught:
        area.archive_directory_sync(area.resolve_directory("datasets/run"))
    if isinstance(error, OSError):
        assert str(caught.value) == (
            "Archiving `datasets/run` failed (No space left on device); nothing was moved, the originals are "
            "where they were."
        )
    assert (run / "a.txt").exists()


def test_a_missing_original_is_named_plainly(area: DataDirectory) -> None:
    with pytest.raises(StorageError) as caught:
        area.archive_files_sync("x", [("gone.txt", area.root / "gone.txt")], source="x")
    assert str(caught.value) == "Archiving `x` failed (No such file or directory); nothing was moved."


def test_an_original_replaced_by_a_link_is_kept(
    area: DataDirectory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = area.root / "datasets" / "run"
    real_verify = archives_module._verify_archive  # pyright: ignore[reportPrivateUsage]

    def verify_then_swap(path: Path, entries: Any) -> None:
        real_verify(path, entries)
        before = (run / "a.txt").stat()
        twin = tmp_path / "twin.txt"
        twin.write_bytes(b"ALPHA")  # same size, same time: only the link itself differs
        os.utime(twin, ns=(before.st_atime_ns, before.st_mtime_ns))
        (run / "a.txt").unlink()
        (run / "a.txt").symlink_to(twin)

    monkeypatch.setattr(archives_module, "_verify_archive", verify_then_swap)
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert info.kept == ["a.txt"]
    assert (run / "a.txt").is_symlink()
    assert not (run / "b.txt").exists()  # the next one is still removed


def test_a_verification_failure_says_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"files": []}))
    with pytest.raises(OSError, match=r"^the manifest does not match the files written$"):
        archives_module._verify_archive(path, [archives_module.ManifestEntry("a", 1, "h")])  # pyright: ignore[reportPrivateUsage]


def test_a_bundle_that_fits_exactly_is_sent(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_bytes(b"a" * 3000)
    b = tmp_path / "b.txt"
    b.write_bytes(b"b" * 3000)
    [zipped] = archives_module.bundle_files([a, b], limit=5999, stem="both") or []
    size = zipped.stat().st_size
    assert archives_module.bundle_files([a, b], limit=size, stem="both") == [zipped]
    assert archives_module.bundle_files([a, b], limit=size - 1, stem="both") is None
    with zipfile.ZipFile(zipped) as zf:
        assert zf.read("a.txt") == b"a" * 3000


# ------------------------------------------------------------------------------------------------ file names


def test_file_names_cut_mid_letter_and_with_several_dots() -> None:
    assert safe_filename("a" + "ж" * 100) == "a" + "ж" * 59  # 119 bytes: half a letter is dropped
    assert safe_filename("x.y" + "a" * 200 + ".txt").endswith(".txt")
    assert safe_filename("Xylophone.X") == "Xylophone.X"
