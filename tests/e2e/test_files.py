"""``/getfile`` and ``/archive``: only regular files inside the caller's server's area of the data directory are
served, listed or archived (never another server's, nor the operator's), archives carry a verified manifest, and a
failed archive moves nothing."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from hypotez.errors import InvalidInputError, NotFoundError, StorageError
from hypotez.plugins._checks import OUTSIDE_SERVER
from hypotez.storage.files import REPORTS, DataDirectory
from hypotez.storage.files import archives as archives_module
from hypotez.storage.models import AuditEntry
from tests.conftest import running_hypotez
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_USER_ID,
    GUILD_ID,
    autocomplete,
    member_payload,
    said,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.discord_rest import RecordedFile
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

MEMBER = member_payload(user_payload(1_100_000_000_000_000_999, "bob"))
#: A second server the bot is in; its administrator holds `files` and `curate` there, and nowhere else.
OTHER_GUILD_ID = 1_100_000_000_000_000_777


def in_guild(payload: dict[str, Any], guild_id: int) -> dict[str, Any]:
    """``payload`` (an interaction from the test guild) as if it came from ``guild_id``."""
    payload["guild_id"] = str(guild_id)
    payload["guild"]["id"] = str(guild_id)
    payload["channel"]["guild_id"] = str(guild_id)
    payload["authorizing_integration_owners"] = {"0": str(guild_id)}
    return payload


def guild_root(hz: RunningBot, guild_id: int = GUILD_ID) -> Path:
    """A server's area of the data directory."""
    return hz.settings.data_dir / "guilds" / str(guild_id)


def sent_files(result: InteractionResult) -> list[RecordedFile]:
    files = list(result.files)
    for call in result.followups:
        files += call.files
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with a few files, links in and out, a FIFO and a database file."""
    root = tmp_path / "data"
    (root / "exports" / "nested").mkdir(parents=True)
    (root / "exports" / "a.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (root / "exports" / "nested" / "b.csv").write_text("prompt,completion\nq,a\n")
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / "hypotez.db").write_bytes(b"SQLite format 3\x00")
    (root / ".env").write_text("HYPOTEZ_DISCORD_TOKEN=secret")
    (root / "tmp").mkdir()
    (root / "tmp" / "upload.part").write_text("partial")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (root / "link-out.txt").symlink_to(outside / "secret.txt")
    (root / "dir-out").symlink_to(outside)
    (root / "link-in.txt").symlink_to(root / "exports" / "a.jsonl")
    (root / "null").symlink_to("/dev/null")
    os.mkfifo(root / "pipe")
    return root


TRAVERSAL = [
    ("../outside/secret.txt", "contains `..`"),
    ("exports/../../outside/secret.txt", "contains `..`"),
    ("..\\outside\\secret.txt", "contains `..`"),
    ("/etc/passwd", "is an absolute path"),
    ("~/secret.txt", "is an absolute path"),
    ("C:\\Windows\\win.ini", "is an absolute path"),
    ("%2e%2e%2foutside%2fsecret.txt", "Percent-encoded paths are not accepted"),
    ("%252e%252e%252foutside%252fsecret.txt", "Percent-encoded paths are not accepted"),
    ("%2Fetc%2Fpasswd", "Percent-encoded paths are not accepted"),
    ("exports/a.jsonl\x00.png", "contains a NUL byte"),
    ("link-out.txt", "is a link that leads outside the data directory"),
    ("dir-out/secret.txt", "is a link that leads outside the data directory"),
    ("null", "is a link that leads outside the data directory"),
    ("pipe", "is not a regular file (a device, pipe or socket)"),
    ("exports", "is a directory"),
    ("big.bin", "files over 1,000 bytes cannot be sent"),
    ("hypotez.db", "is not served"),
    ("hypotez.db-wal", "There is nothing at"),
    (".env", "is not served"),
    ("tmp/upload.part", "is not served"),
    ("missing.txt", "There is nothing at `missing.txt`"),
    ("", "Give a path relative to the data directory"),
]


@pytest.mark.parametrize(("path", "message"), TRAVERSAL)
def test_unsafe_paths_are_refused(data: Path, path: str, message: str) -> None:
    directory = DataDirectory(data, hidden=[data / "hypotez.db", data / "hypotez.db-wal"])
    with pytest.raises((InvalidInputError, NotFoundError)) as caught:
        directory.resolve_file(path, limit=1000)
    assert message in str(caught.value)
    assert "not yours" not in str(caught.value)


def test_safe_paths_resolve_inside(data: Path) -> None:
    directory = DataDirectory(data, hidden=[data / "hypotez.db"])
    found = directory.resolve_file("./exports//nested/b.csv", limit=1000)
    assert found.path == (data / "exports" / "nested" / "b.csv").resolve()
    assert found.relative == "exports/nested/b.csv"
    assert found.size == len("prompt,completion\nq,a\n")
    # A link that stays inside is followed; the file served is its target.
    assert directory.resolve_file("link-in.txt", limit=1000).relative == "exports/a.jsonl"
    # A file whose name merely contains a percent sign is not "encoded".
    (data / "100% sure.txt").write_text("yes")
    assert directory.resolve_file("100% sure.txt", limit=1000).relative == "100% sure.txt"
    assert sorted(directory.suggest_files("")) == [
        "100% sure.txt",
        "big.bin",
        "exports/a.jsonl",
        "exports/nested/b.csv",
        "link-in.txt",
    ]
    (data / "sub").mkdir()
    with pytest.raises(InvalidInputError, match="holds the database"):
        DataDirectory(data, hidden=[data / "sub" / "x.db"]).archive_directory_sync(data / "sub")
    # Local training jobs and their models are in use: neither the area nor a job in it is archived.
    (data / "training" / "job-1" / "model").mkdir(parents=True)
    (data / "training" / "job-1" / "model" / "config.json").write_text("{}")
    for inside in ("training", "training/job-1"):
        with pytest.raises(InvalidInputError, match="local training jobs"):
            directory.archive_directory_sync((data / inside).resolve())
    assert (data / "training" / "job-1" / "model" / "config.json").is_file()
    # Nor local base models, nor the servers' areas.
    (data / "models" / "tiny").mkdir(parents=True)
    (data / "models" / "tiny" / "config.json").write_text("{}")
    (data / "guilds" / "1" / "exports").mkdir(parents=True)
    (data / "guilds" / "1" / "exports" / "x.jsonl").write_text("{}")
    for inside, what in [("models", "local base models"), ("models/tiny", "local base models"),
                         ("guilds", "the servers' own files"), ("guilds/1", "the servers' own files")]:  # fmt: skip
        with pytest.raises(InvalidInputError, match=what):
            directory.archive_directory_sync((data / inside).resolve())
    assert (data / "models" / "tiny" / "config.json").is_file()
    assert (data / "guilds" / "1" / "exports" / "x.jsonl").is_file()


def test_a_guild_area_is_rooted_in_guilds_and_reaches_nothing_outside(data: Path) -> None:
    directory = DataDirectory(data, hidden=[data / "hypotez.db"])
    area = directory.for_guild(42)
    assert area.root == data.resolve() / "guilds" / "42"
    assert area.guild_id == 42
    assert not area.root.exists()  # nothing is created until something is written
    # Where the training code writes a server's /test reports, and the path /getfile then serves.
    reports = area.area(REPORTS)
    assert reports == area.root / "reports"
    (reports / "test-1.jsonl").write_text("{}\n")
    assert area.relative(reports / "test-1.jsonl") == "reports/test-1.jsonl"
    assert area.resolve_file("reports/test-1.jsonl", limit=1000).relative == "reports/test-1.jsonl"
    # The top of the data directory, and another server's area, are out of reach.
    (data / "guilds" / "43" / "exports").mkdir(parents=True)
    (data / "guilds" / "43" / "exports" / "theirs.jsonl").write_text("theirs")
    (area.root / "link-next-door.jsonl").symlink_to(data / "guilds" / "43" / "exports" / "theirs.jsonl")
    (area.root / "link-db").symlink_to(data / "hypotez.db")
    for path, message in [
        ("exports/a.jsonl", "There is nothing at `exports/a.jsonl` in this server's files"),
        ("../43/exports/theirs.jsonl", "contains `..`"),
        ("guilds/43/exports/theirs.jsonl", "There is nothing at"),
        ("hypotez.db", "There is nothing at"),
        ("link-next-door.jsonl", "is a link that leads outside this server's files"),
        ("link-db", "is a link that leads outside this server's files"),
    ]:
        with pytest.raises((InvalidInputError, NotFoundError)) as caught:
            area.resolve_file(path, limit=1000)
        assert message in str(caught.value), path
    assert area.suggest_files("") == ["reports/test-1.jsonl"]
    with pytest.raises(InvalidInputError, match="use this command in a server"):
        directory.for_guild(None)
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="not a guild id"):
            directory.for_guild(bad)
    with pytest.raises(ValueError, match="already a guild's area"):
        area.for_guild(43)


@pytest_asyncio.fixture
async def small_hz(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    settings = bot_settings.model_copy(update={"max_upload_bytes": 1000})
    async with running_hypotez(settings, openai_fake) as running:
        yield running


async def audit(hz: RunningBot) -> list[tuple[str, str | None]]:
    async with hz.services.db.session() as session:
        rows = (await session.execute(select(AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id))).all()
    return [(a, t) for a, t in rows]


@pytest.mark.asyncio
async def test_getfile_serves_files_inside_and_refuses_the_traversal_suite(
    small_hz: RunningBot, tmp_path: Path
) -> None:
    hz = small_hz
    root = guild_root(hz)
    (root / "exports" / "nested").mkdir(parents=True)
    (root / "exports" / "a.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / ".env").write_text("HYPOTEZ_DISCORD_TOKEN=secret")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp" / "upload.part").write_text("partial")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (root / "link-out.txt").symlink_to(outside / "secret.txt")
    (root / "dir-out").symlink_to(outside)
    (root / "null").symlink_to("/dev/null")
    os.mkfifo(root / "pipe")

    served = await hz.send(slash("getfile", {"path": "exports/a.jsonl"}, user=ADMIN_MEMBER))
    assert served.ephemeral
    [file] = sent_files(served)
    assert file.filename == "a.jsonl"
    assert file.content == (root / "exports" / "a.jsonl").read_bytes()
    assert f"`exports/a.jsonl` ({len(file.content)} bytes)" in said(served)
    assert await audit(hz) == [("file.get", "exports/a.jsonl")]

    for path, message in TRAVERSAL:
        if path in {"hypotez.db", "hypotez.db-wal"}:
            continue  # the database is at the top of the data directory, outside every server's area (below)
        if path == "":
            continue  # Discord does not send an empty required option
        refused = await hz.send(slash("getfile", {"path": path}, user=ADMIN_MEMBER))
        assert refused.ephemeral, path
        assert message.replace("the data directory", "this server's files") in said(refused), path
        assert sent_files(refused) == [], path
        assert "not yours" not in said(refused)
    assert [a for a, _ in await audit(hz)] == ["file.get"]

    offered = await hz.send(autocomplete("getfile", {"path": ""}, "path", user=ADMIN_MEMBER))
    values = [c["value"] for c in offered.choices]
    assert sorted(values) == ["big.bin", "exports/a.jsonl"]
    typed = await hz.send(autocomplete("getfile", {"path": "A.JS"}, "path", user=ADMIN_MEMBER))
    assert [c["value"] for c in typed.choices] == ["exports/a.jsonl"]
    hidden = await hz.send(autocomplete("getfile", {"path": ""}, "path", user=MEMBER))
    assert hidden.choices == []
    denied = await hz.send(slash("getfile", {"path": "exports/a.jsonl"}, user=MEMBER))
    assert "`files` capability" in said(denied)
    assert sent_files(denied) == []


def _two_servers_and_the_operator(hz: RunningBot) -> dict[str, bytes]:
    """Files of the test server, of another server, and the operator's; returns the latter two's contents."""
    data = hz.settings.data_dir
    mine = guild_root(hz)
    (mine / "exports").mkdir(parents=True)
    (mine / "exports" / "mine.jsonl").write_text('{"prompt": "mine", "completion": "ours"}\n')
    theirs = guild_root(hz, OTHER_GUILD_ID)
    for folder in ("exports", "reports", "datasets/secret", "archive"):
        (theirs / folder).mkdir(parents=True)
    (theirs / "exports" / "theirs.jsonl").write_text('{"prompt": "theirs", "completion": "private"}\n')
    (theirs / "reports" / "test-1.jsonl").write_text('{"summary": "theirs"}\n')
    (theirs / "datasets" / "secret" / "a.jsonl").write_text('{"prompt": "secret", "completion": "data"}\n')
    with zipfile.ZipFile(theirs / "archive" / "theirs-20250101-000000.zip", "w") as zf:
        zf.writestr("manifest.json", json.dumps({"source": "exports", "created_at": "2025-01-01T00:00:00+00:00",
                                                 "files": []}))  # fmt: skip
    (data / "training" / "job-1").mkdir(parents=True)
    (data / "training" / "job-1" / "request.json").write_text('{"train": "every example"}')
    (data / "reports").mkdir()
    (data / "reports" / "old.jsonl").write_text('{"summary": "operator"}\n')
    (data / "models" / "tiny").mkdir(parents=True)
    (data / "models" / "tiny" / "config.json").write_text("{}")
    (data / "exports" / str(OTHER_GUILD_ID)).mkdir(parents=True)
    (data / "exports" / str(OTHER_GUILD_ID) / "legacy.jsonl").write_text("{}\n")
    return {
        p.relative_to(data).as_posix(): p.read_bytes()
        for p in sorted(data.rglob("*"))
        if p.is_file() and not p.is_relative_to(mine) and not p.name.startswith("hypotez.db")
    }


@pytest.mark.asyncio
async def test_a_server_reaches_only_its_own_files(hz: RunningBot) -> None:
    """An administrator of one server (anyone who invites the bot) can neither read, list, archive nor delete
    another server's files or the operator's (training data, reports, models, the database)."""
    others = _two_servers_and_the_operator(hz)
    data = hz.settings.data_dir
    for path in [
        f"exports/{OTHER_GUILD_ID}/legacy.jsonl",
        f"guilds/{OTHER_GUILD_ID}/exports/theirs.jsonl",
        "training/job-1/request.json",
        "reports/old.jsonl",
        "models/tiny/config.json",
        "hypotez.db",
        "../../training/job-1/request.json",
        f"../{OTHER_GUILD_ID}/reports/test-1.jsonl",
    ]:
        refused = await hz.send(slash("getfile", {"path": path}, user=ADMIN_MEMBER))
        assert sent_files(refused) == [], path
        assert "There is nothing at" in said(refused) or "contains `..`" in said(refused), path
        assert "private" not in said(refused)
    offered = await hz.send(autocomplete("getfile", {"path": ""}, "path", user=ADMIN_MEMBER))
    assert [c["value"] for c in offered.choices] == ["exports/mine.jsonl"]
    served = await hz.send(slash("getfile", {"path": "exports/mine.jsonl"}, user=ADMIN_MEMBER))
    [file] = sent_files(served)
    assert file.content == (guild_root(hz) / "exports" / "mine.jsonl").read_bytes()

    # Archives: the other server's are neither listed nor sent.
    listed = await hz.send(slash("archive", subcommand="list", user=ADMIN_MEMBER))
    assert "There are no archives yet" in said(listed)
    names = await hz.send(autocomplete("archive", {"name": ""}, "name", subcommand="get", user=ADMIN_MEMBER))
    assert names.choices == []
    got = await hz.send(slash("archive", {"name": "theirs-20250101-000000.zip"}, subcommand="get", user=ADMIN_MEMBER))
    assert "There is no archive called" in said(got)
    assert sent_files(got) == []

    # /archive create zips this server's directory only; the operator's areas cannot even be named.
    dirs = await hz.send(autocomplete("archive", {"directory": ""}, "directory", subcommand="create",
                                      user=ADMIN_MEMBER))  # fmt: skip
    assert [c["value"] for c in dirs.choices] == ["exports"]
    for directory in ("reports", "models", "training", "guilds", f"../{OTHER_GUILD_ID}/exports"):
        refused = await hz.send(slash("archive", {"directory": directory}, subcommand="create", user=ADMIN_MEMBER))
        assert "There is nothing at" in said(refused) or "contains `..`" in said(refused), directory
    archived = await hz.send(slash("archive", {"directory": "exports"}, subcommand="create", user=ADMIN_MEMBER))
    assert "Archived `exports` as `archive/exports-" in said(archived)
    assert "1 files" in said(archived)
    [zipped] = list((guild_root(hz) / "archive").glob("*.zip"))
    with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "mine.jsonl"]

    # /dataset select offers and reads only this server's datasets/.
    offered_dirs = await hz.send(autocomplete("dataset", {"path": ""}, "path", subcommand="select", user=ADMIN_MEMBER))
    assert offered_dirs.choices == []
    for path in ("secret", f"../../{OTHER_GUILD_ID}/datasets/secret"):
        refused = await hz.send(slash("dataset", {"path": path}, subcommand="select", user=ADMIN_MEMBER))
        assert "There is nothing at" in said(refused) or "contains `..`" in said(refused), path

    # Everything outside this server's area is as it was.
    after = {
        p.relative_to(data).as_posix(): p.read_bytes()
        for p in sorted(data.rglob("*"))
        if p.is_file() and not p.is_relative_to(guild_root(hz)) and not p.name.startswith("hypotez.db")
    }
    assert after == others

    # The other server's administrator sees that server's files, and not this one's.
    theirs = await hz.send(in_guild(autocomplete("getfile", {"path": ""}, "path", user=ADMIN_MEMBER), OTHER_GUILD_ID))
    assert sorted(c["value"] for c in theirs.choices) == [
        "archive/theirs-20250101-000000.zip",
        "datasets/secret/a.jsonl",
        "exports/theirs.jsonl",
        "reports/test-1.jsonl",
    ]
    their_report = await hz.send(
        in_guild(slash("getfile", {"path": "reports/test-1.jsonl"}, user=ADMIN_MEMBER), OTHER_GUILD_ID)
    )
    [report] = sent_files(their_report)
    assert report.content == b'{"summary": "theirs"}\n'
    mine = await hz.send(
        in_guild(slash("getfile", {"path": "archive/" + zipped.name}, user=ADMIN_MEMBER), OTHER_GUILD_ID)
    )
    assert "There is nothing at" in said(mine)
    assert sent_files(mine) == []


@pytest.mark.asyncio
async def test_file_commands_in_a_direct_message_are_refused_plainly(hz: RunningBot) -> None:
    _two_servers_and_the_operator(hz)
    for payload in [
        slash("getfile", {"path": "exports/mine.jsonl"}, user=user_payload(ADMIN_USER_ID, "admin"), guild=False),
        slash("archive", subcommand="list", user=user_payload(ADMIN_USER_ID, "admin"), guild=False),
        slash("archive", {"directory": "exports"}, subcommand="create", user=user_payload(ADMIN_USER_ID, "admin"),
              guild=False),
        slash("archive", {"name": "x.zip"}, subcommand="get", user=user_payload(ADMIN_USER_ID, "admin"),
              guild=False),
        slash("dataset", subcommand="list", user=user_payload(ADMIN_USER_ID, "admin"), guild=False),
        slash("dataset", {"path": "secret"}, subcommand="select", user=user_payload(ADMIN_USER_ID, "admin"),
              guild=False),
    ]:  # fmt: skip
        refused = await hz.send(payload)
        assert refused.ephemeral
        assert said(refused) == OUTSIDE_SERVER
        assert sent_files(refused) == []
    offered = await hz.send(autocomplete("getfile", {"path": ""}, "path", guild=False))
    assert offered.choices == []
    assert await audit(hz) == []


# ------------------------------------------------------------------------------------------------- archives


def _make_directory(root: Path) -> dict[str, bytes]:
    folder = root / "datasets" / "run 1"
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (folder / "deep" / "b.txt").write_text("q\ta\n")
    (folder / "deep" / "er" / "c.bin").write_bytes(bytes(range(256)) * 40)
    return tree(folder)


@pytest.mark.asyncio
async def test_archive_create_writes_a_verified_manifest_then_moves_the_originals(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = guild_root(hz)
    originals = _make_directory(root)
    threads: list[str] = []
    real_add = archives_module._add_to_zip  # pyright: ignore[reportPrivateUsage]

    def spy(zf: zipfile.ZipFile, member: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_add(zf, member)

    monkeypatch.setattr(archives_module, "_add_to_zip", spy)

    offered = await hz.send(autocomplete("archive", {"directory": "run"}, "directory", subcommand="create",
                                         user=ADMIN_MEMBER))  # fmt: skip
    assert [c["value"] for c in offered.choices] == ["datasets/run 1", "datasets/run 1/deep", "datasets/run 1/deep/er"]

    result = await hz.send(
        slash("archive", {"directory": "datasets/run 1", "attach": True}, subcommand="create", user=ADMIN_MEMBER)
    )
    text = said(result)
    assert "Archived `datasets/run 1` as `archive/datasets_run_1-" in text
    assert "3 files" in text
    assert "the originals were removed" in text
    [archive] = list((root / "archive").glob("*.zip"))
    [attached] = sent_files(result)
    assert attached.filename == archive.name
    assert attached.content == archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["source"] == "datasets/run 1"
        assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
            path: (len(content), hashlib.sha256(content).hexdigest()) for path, content in originals.items()
        }
        assert {name: zf.read(name) for name in originals} == originals
    assert not (root / "datasets" / "run 1").exists()
    assert (root / "datasets").is_dir()
    assert threads
    assert threading.main_thread().name not in threads
    assert [a for a, _ in await audit(hz)] == ["archive.create"]

    listed = await hz.send(slash("archive", subcommand="list", user=ADMIN_MEMBER))
    assert f"• `{archive.name}`: 3 files" in said(listed)
    assert "from `datasets/run 1`" in said(listed)
    names = await hz.send(autocomplete("archive", {"name": ""}, "name", subcommand="get", user=ADMIN_MEMBER))
    assert [c["value"] for c in names.choices] == [archive.name]
    got = await hz.send(slash("archive", {"name": archive.name}, subcommand="get", user=ADMIN_MEMBER))
    [again] = sent_files(got)
    assert again.content == archive.read_bytes()
    for name, message in [
        ("../hypotez.db", "is not an archive name"),
        ("nope.zip", "There is no archive called `nope.zip`"),
    ]:
        refused = await hz.send(slash("archive", {"name": name}, subcommand="get", user=ADMIN_MEMBER))
        assert message in said(refused)
        assert sent_files(refused) == []
    for directory, message in [
        ("archive", "inside the `archive/` area"),
        ("../", "contains `..`"),
        (".", "not the directory itself"),
        ("datasets/nope", "There is nothing at"),
    ]:
        refused = await hz.send(slash("archive", {"directory": directory}, subcommand="create", user=ADMIN_MEMBER))
        assert message in said(refused), directory


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["while writing", "while verifying"])
async def test_a_failed_archive_keeps_the_originals(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    root = guild_root(hz)
    originals = _make_directory(root)
    if failure == "while writing":
        real_add = archives_module._add_to_zip  # pyright: ignore[reportPrivateUsage]
        calls: list[str] = []

        def failing(zf: zipfile.ZipFile, member: Any) -> Any:
            calls.append(member.arcname)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            return real_add(zf, member)

        monkeypatch.setattr(archives_module, "_add_to_zip", failing)
        reason = "No space left on device"
    else:

        def corrupt(path: Path, entries: Any) -> None:
            raise OSError("deep/b.txt does not read back as written")

        monkeypatch.setattr(archives_module, "_verify_archive", corrupt)
        reason = "deep/b.txt does not read back as written"

    result = await hz.send(slash("archive", {"directory": "datasets/run 1"}, subcommand="create", user=ADMIN_MEMBER))
    text = said(result)
    assert f"Archiving `datasets/run 1` failed ({reason}); nothing was moved" in text
    assert tree(root / "datasets" / "run 1") == originals
    assert list((root / "archive").iterdir()) == []
    assert await audit(hz) == []


@pytest.mark.asyncio
async def test_archive_directory_unit(tmp_path: Path) -> None:
    root = tmp_path / "data"
    originals = _make_directory(root)
    directory = DataDirectory(root)
    info = await directory.archive_directory(await directory.directory("datasets/run 1"))
    assert [f.path for f in info.files] == sorted(originals, key=lambda p: (p.count("/"), p))
    assert info.kept == []
    assert [a.name for a in await directory.archives()] == [info.name]
    with pytest.raises(StorageError, match="Archiving `x` failed"):
        directory.archive_files_sync("x", [("gone.txt", root / "missing.txt")], source="x")


def test_safe_filename_keeps_the_extension() -> None:
    from hypotez.storage.files import safe_filename

    long = "a" * 300 + ".jsonl"
    assert safe_filename(long).endswith(".jsonl")
    assert len(safe_filename(long)) == 120
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("...") == "file"
    # File systems count bytes: a Cyrillic (or CJK, emoji...) name is cut by its UTF-8 length, never mid-letter.
    cyrillic = safe_filename("данные" * 60 + ".jsonl")
    assert cyrillic.endswith(".jsonl")
    assert len(cyrillic.encode()) <= 120
    assert cyrillic.encode().decode() == cyrillic
    wide = safe_filename("数据" * 200)
    assert 0 < len(wide.encode()) <= 120


@pytest.mark.asyncio
async def test_incoming_streams_to_disk_and_stops_at_the_limit(tmp_path: Path) -> None:
    directory = DataDirectory(tmp_path / "data")

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for index in range(count):
            yield bytes([index]) * 400

    async with directory.incoming(chunks(2), "ok.jsonl", limit=1000) as path:
        assert path.parent == (tmp_path / "data" / "tmp").resolve()
        assert path.name.endswith("-ok.jsonl")
        assert path.read_bytes() == b"\x00" * 400 + b"\x01" * 400
    assert not path.exists()
    # An attachment larger than Discord said it was is cut off at the limit, and nothing is left behind.
    with pytest.raises(InvalidInputError, match="larger than the upload limit of 1,000 bytes"):
        async with directory.incoming(chunks(3), "big.jsonl", limit=1000):
            pytest.fail("a file over the limit must not be handed on")
    assert list((tmp_path / "data" / "tmp").iterdir()) == []
