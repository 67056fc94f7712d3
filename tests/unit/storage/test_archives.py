"""Archives' second lines of defence: a file swapped for a link or a pipe while its directory is being archived,
originals changed during archiving (even to the same size) kept, verification failing on a size or a hash alone,
and listings that neither follow a linked zip nor let one bad archive hide the others.

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.errors import InvalidInputError, StorageError
from hypotez.storage.files import DataDirectory
from hypotez.storage.files import archives as archives_module
from hypotez.storage.files.archives import MANIFEST, bundle_files, read_archives, zip_directory, zip_files

if TYPE_CHECKING:
    from collections.abc import Iterator


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def area(tmp_path: Path) -> DataDirectory:
    """A guild's area with ``datasets/run`` holding two files, and a secret outside the data directory."""
    directory = DataDirectory(tmp_path / "data").for_guild(7)
    run = directory.root / "datasets" / "run"
    run.mkdir(parents=True)
    (run / "a.txt").write_bytes(b"alpha")
    (run / "b.txt").write_bytes(b"bravo!")
    (tmp_path / "secret.txt").write_bytes(b"not yours")
    return directory


def _swapped(entries: list[tuple[Path, bool]], swap: Path, replace: Any) -> Iterator[tuple[Path, bool]]:
    """``entries`` as listed, ``swap`` replaced (by ``replace(swap)``) once every entry was looked at: after the
    listing's checks, before the file is opened."""
    yield from entries
    swap.unlink()
    replace(swap)


def test_a_file_swapped_for_a_link_while_archiving_is_not_followed(area: DataDirectory, tmp_path: Path) -> None:
    run = area.root / "datasets" / "run"
    listed = area._walk(run, limit=None)  # pyright: ignore[reportPrivateUsage]
    entries = _swapped(listed, run / "b.txt", lambda p: p.symlink_to(tmp_path / "secret.txt"))
    with pytest.raises(StorageError, match="Archiving `datasets/run` failed") as caught:
        zip_directory(area.root / "archive", run, entries, source="datasets/run")
    assert "not yours" not in str(caught.value)
    assert list((area.root / "archive").iterdir()) == []  # the partial zip is gone
    assert (run / "a.txt").read_bytes() == b"alpha"  # nothing was moved
    assert (tmp_path / "secret.txt").read_bytes() == b"not yours"


def test_a_file_swapped_for_a_pipe_while_archiving_neither_hangs_nor_is_archived(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    listed = area._walk(run, limit=None)  # pyright: ignore[reportPrivateUsage]
    entries = _swapped(listed, run / "b.txt", os.mkfifo)
    outcome: list[BaseException | None] = []

    def archive() -> None:
        try:
            zip_directory(area.root / "archive", run, entries, source="datasets/run")
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=archive, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # blocked opening the pipe: give it a writer so the thread ends, then fail
        fd = os.open(run / "b.txt", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(timeout=20)
        pytest.fail("archiving blocked on a pipe")
    [error] = outcome
    assert isinstance(error, StorageError)
    assert "is not a regular file" in str(error)
    assert list((area.root / "archive").iterdir()) == []
    assert (run / "a.txt").read_bytes() == b"alpha"


def test_links_and_directories_among_the_entries_are_not_archived(area: DataDirectory, tmp_path: Path) -> None:
    run = area.root / "datasets" / "run"
    (run / "out.txt").symlink_to(tmp_path / "secret.txt")
    (run / "sub").mkdir()
    entries = [(run / "a.txt", False), (run / "out.txt", False), (run / "sub", True)]
    info = zip_directory(area.root / "archive", run, entries, source="datasets/run")
    assert [f.path for f in info.files] == ["a.txt"]
    with zipfile.ZipFile(info.path) as zf:
        assert sorted(zf.namelist()) == ["a.txt", MANIFEST]
    assert not (run / "a.txt").exists()
    assert (tmp_path / "secret.txt").exists()
    with pytest.raises(InvalidInputError, match="`datasets/run` has no files to archive"):
        zip_directory(
            area.root / "archive", run, [(run / "out.txt", False), (run / "sub", True)], source="datasets/run"
        )


@pytest.mark.parametrize("change", ["same size, new time", "new size, same time"])
def test_an_original_changed_while_archiving_is_kept(
    area: DataDirectory, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    run = area.root / "datasets" / "run"
    real_verify = archives_module._verify_archive  # pyright: ignore[reportPrivateUsage]

    def verify_then_change(path: Path, entries: Any) -> None:
        real_verify(path, entries)
        target = run / "b.txt"
        before = target.stat()
        if change == "same size, new time":
            target.write_bytes(b"BRAVO!")
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        else:
            target.write_bytes(b"bravo!!")
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))

    monkeypatch.setattr(archives_module, "_verify_archive", verify_then_change)
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert info.kept == ["b.txt"]
    assert not (run / "a.txt").exists()
    assert (run / "b.txt").exists()
    with zipfile.ZipFile(info.path) as zf:
        assert zf.read("b.txt") == b"bravo!"  # what was read, as the manifest says
    assert [(f.path, f.size, f.sha256) for f in info.files] == [
        ("a.txt", 5, _sha(b"alpha")),
        ("b.txt", 6, _sha(b"bravo!")),
    ]


def test_archived_originals_are_removed_with_the_directories_left_empty(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    (run / "deep" / "er").mkdir(parents=True)
    (run / "deep" / "er" / "c.bin").write_bytes(bytes(range(256)))
    info = area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert info.kept == []
    assert info.source == "datasets/run"
    assert info.name.startswith("datasets_run-")
    assert info.name.endswith(".zip")
    assert not run.exists()
    assert (area.root / "datasets").is_dir()
    [listed] = area.list_archives()
    assert listed.name == info.name
    assert listed.source == "datasets/run"
    assert listed.size == info.path.stat().st_size == info.size
    assert [f.path for f in listed.files] == ["a.txt", "b.txt", "deep/er/c.bin"]
    assert listed.files[2].sha256 == _sha(bytes(range(256)))
    assert listed.files[2].size == 256


def test_zip_files_keeps_the_originals_when_asked(area: DataDirectory) -> None:
    run = area.root / "datasets" / "run"
    kept = area.archive_files_sync(
        "keep me", [("x/a.txt", run / "a.txt")], source="datasets/run", remove_originals=False
    )
    assert kept.kept == []
    assert (run / "a.txt").exists()
    assert kept.name.startswith("keep_me-")
    moved = area.archive_files_sync("keep me", [("a.txt", run / "a.txt")], source="datasets/run")
    assert not (run / "a.txt").exists()
    assert moved.name != kept.name  # a second archive in the same second gets its own name
    assert moved.name.endswith("-2.zip")
    with zipfile.ZipFile(kept.path) as zf:
        manifest = json.loads(zf.read(MANIFEST))
    assert manifest["source"] == "datasets/run"
    assert manifest["files"] == [{"path": "x/a.txt", "size": 5, "sha256": _sha(b"alpha")}]
    assert dt.datetime.fromisoformat(manifest["created_at"]).tzinfo is not None


def test_an_original_that_cannot_be_removed_is_reported(area: DataDirectory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = area.root / "datasets" / "run"
    real_unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self.name == "a.txt":
            raise PermissionError(13, "Permission denied")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    info = zip_files(area.root / "archive", "run", [("a.txt", run / "a.txt"), ("b.txt", run / "b.txt")], source="run")
    assert info.kept == ["a.txt"]
    assert (run / "a.txt").exists()
    assert not (run / "b.txt").exists()


# ------------------------------------------------------------------------------------------------ verification


def _zip(path: Path, members: dict[str, bytes], listed: list[tuple[str, int, str]]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        files = [{"path": p, "size": s, "sha256": h} for p, s, h in listed]
        zf.writestr(MANIFEST, json.dumps({"source": "s", "created_at": "2026-01-01T00:00:00+00:00", "files": files}))


@pytest.mark.parametrize(
    ("listed", "reason"),
    [
        ([("a.txt", 6, _sha(b"alpha"))], "a.txt does not read back as written"),  # the size alone is wrong
        ([("a.txt", 5, _sha(b"alphA"))], "a.txt does not read back as written"),  # the hash alone is wrong
        ([("b.txt", 5, _sha(b"alpha"))], "There is no item named"),  # a member the zip does not hold
    ],
)
def test_verification_fails_on_a_size_or_a_hash_alone(
    tmp_path: Path, listed: list[tuple[str, int, str]], reason: str
) -> None:
    path = tmp_path / "x.zip"
    _zip(path, {"a.txt": b"alpha"}, listed)
    entries = [archives_module.ManifestEntry(p, s, h) for p, s, h in listed]
    with pytest.raises((OSError, KeyError), match=reason):
        archives_module._verify_archive(path, entries)  # pyright: ignore[reportPrivateUsage]


def test_verification_fails_when_the_manifest_differs_from_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    _zip(path, {"a.txt": b"alpha"}, [("a.txt", 5, _sha(b"alpha"))])
    good = archives_module.ManifestEntry("a.txt", 5, _sha(b"alpha"))
    archives_module._verify_archive(path, [good])  # pyright: ignore[reportPrivateUsage]
    for entries in (
        [archives_module.ManifestEntry("a.txt", 5, _sha(b"other"))],
        [archives_module.ManifestEntry("a.txt", 4, _sha(b"alpha"))],
        [archives_module.ManifestEntry("A.txt", 5, _sha(b"alpha"))],
        [good, good],
        [],
    ):
        with pytest.raises(OSError, match="the manifest does not match the files written"):
            archives_module._verify_archive(path, entries)  # pyright: ignore[reportPrivateUsage]


def test_a_zip_failing_verification_is_never_left_under_its_name(
    area: DataDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = area.root / "datasets" / "run"
    real_add = archives_module._add_to_zip  # pyright: ignore[reportPrivateUsage]

    def lying(zf: zipfile.ZipFile, member: Any) -> archives_module.ManifestEntry:
        entry = real_add(zf, member)
        return archives_module.ManifestEntry(entry.path, entry.size, _sha(b"something else"))

    monkeypatch.setattr(archives_module, "_add_to_zip", lying)
    with pytest.raises(StorageError, match="does not read back as written"):
        area.archive_directory_sync(area.resolve_directory("datasets/run"))
    assert list((area.root / "archive").iterdir()) == []
    assert (run / "a.txt").exists()
    assert (run / "b.txt").exists()


# ------------------------------------------------------------------------------------------------ listings


class _Ordered(type(Path())):  # type: ignore[misc]  # pyright: ignore[reportUntypedBaseClass]
    """A folder whose glob lists its entries in a chosen order (a directory's order is the file system's)."""

    reverse = False

    def glob(self, pattern: str) -> Iterator[Path]:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        return iter(sorted(super().glob(pattern), key=lambda p: p.name, reverse=self.reverse))


@pytest.mark.parametrize("reverse", [False, True])
def test_a_listing_skips_linked_and_bad_archives_and_shows_the_rest(
    area: DataDirectory, tmp_path: Path, reverse: bool
) -> None:
    run = area.root / "datasets" / "run"
    folder = area.root / "archive"
    first = zip_files(folder, "m-first", [("a.txt", run / "a.txt")], source="one", remove_originals=False)
    second = zip_files(folder, "m-second", [("b.txt", run / "b.txt")], source="two", remove_originals=False)
    elsewhere = zip_files(tmp_path / "elsewhere", "outside", [("b.txt", run / "b.txt")], source="outside")
    # Between and around the good ones (by name): a linked zip, a directory, and broken ones.
    (folder / "a-link.zip").symlink_to(elsewhere.path)
    (folder / "n-link.zip").symlink_to(elsewhere.path)
    (folder / "z-link.zip").symlink_to(elsewhere.path)
    (folder / "b-folder.zip").mkdir()
    (folder / "c-not-a-zip.zip").write_bytes(b"garbage")
    (folder / "n-no-manifest.zip").write_bytes(b"")
    with zipfile.ZipFile(folder / "n-no-manifest.zip", "w") as zf:
        zf.writestr("a.txt", "x")
    with zipfile.ZipFile(folder / "n-bad-json.zip", "w") as zf:
        zf.writestr(MANIFEST, "{not json")
    with zipfile.ZipFile(folder / "n-no-files.zip", "w") as zf:
        zf.writestr(MANIFEST, json.dumps({"created_at": "2026-01-01T00:00:00+00:00"}))
    with zipfile.ZipFile(folder / "z-bad-date.zip", "w") as zf:
        zf.writestr(MANIFEST, json.dumps({"created_at": "yesterday", "files": []}))
    (folder / "notes.txt").write_text("not an archive")

    ordered = _Ordered(folder)
    ordered.reverse = reverse
    infos = read_archives(ordered)
    assert [i.name for i in infos] == [second.name, first.name]  # newest first
    assert [i.source for i in infos] == ["two", "one"]
    assert read_archives(folder / "missing") == []


def test_archives_of_the_same_second_are_listed_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("b.zip", "a.zip", "c.zip"):
        with zipfile.ZipFile(folder / name, "w") as zf:
            zf.writestr(MANIFEST, json.dumps({"created_at": "2026-01-01T00:00:00+00:00", "files": []}))
    with zipfile.ZipFile(folder / "old.zip", "w") as zf:
        zf.writestr(MANIFEST, json.dumps({"created_at": "2025-01-01T00:00:00+00:00", "files": [], "source": "s"}))
    infos = read_archives(folder)
    assert [i.name for i in infos] == ["c.zip", "b.zip", "a.zip", "old.zip"]
    assert [i.source for i in infos] == ["", "", "", "s"]


# ------------------------------------------------------------------------------------------------ bundles


def test_bundles_send_files_as_they_are_when_they_fit(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_bytes(b"x" * 600)
    b.write_bytes(b"y" * 400)
    assert bundle_files([a, b], limit=1000, stem="s") == [a, b]
    [zipped] = bundle_files([a, b], limit=999, stem="my export") or []
    assert zipped == tmp_path / "my_export.zip"
    with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ["a.jsonl", "b.jsonl"]
        assert zf.read("a.jsonl") == b"x" * 600
    assert not (tmp_path / "my_export.zip.partial").exists()
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(5000))
    assert bundle_files([noise], limit=4000, stem="noise") is None
    assert (tmp_path / "noise.zip").stat().st_size > 4000  # kept on disk: the caller says where


def test_zip_times_before_1980_are_clamped() -> None:
    assert archives_module._zip_time(0) == (1980, 1, 1, 0, 0, 0)  # pyright: ignore[reportPrivateUsage]
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert archives_module._zip_time(int(when.timestamp() * 1e9)) == (2024, 5, 6, 7, 8, 9)  # pyright: ignore[reportPrivateUsage]
