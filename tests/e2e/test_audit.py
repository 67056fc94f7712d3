"""``/audit``: one server's log for its administrators, newest first, paged, filtered, exported."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import pytest

from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_USER_ID,
    GUILD_ID,
    UserRef,
    button,
    in_other_guild,
    said,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult

OTHER_GUILD_ID = 1_100_000_000_000_000_777
ALICE = 1_100_000_000_000_000_555


def _message(result: InteractionResult) -> dict[str, object]:
    message = result.original_message
    assert message is not None
    return message


def _ids(result: InteractionResult) -> list[str]:
    return [c["custom_id"] for row in result.components for c in row["components"]]


async def _fill(hz: RunningBot) -> None:
    for n in range(20):
        await hz.services.audit.record("file.get", guild_id=GUILD_ID, actor_id=ADMIN_USER_ID, target=f"file-{n}")
    await hz.services.audit.record("capability.grant", guild_id=GUILD_ID, actor_id=ALICE, target="=HYPERLINK(1)")
    await hz.services.audit.record("file.get", guild_id=OTHER_GUILD_ID, actor_id=ALICE, target="secret-elsewhere")


@pytest.mark.asyncio
async def test_audit_pages_newest_first_and_never_shows_another_server(hz: RunningBot) -> None:
    await _fill(hz)
    first = await hz.send(slash("audit", user=ADMIN_MEMBER))
    text = said(first)
    assert "page 1 of 2 (21 entries" in text
    assert first.ephemeral
    lines = text.splitlines()[1:]
    assert len(lines) == 15
    assert f"<@{ALICE}> granted a capability" in lines[0]
    assert "<t:" in lines[0]
    assert "file-19" in lines[1]
    assert "secret-elsewhere" not in text
    ids = _ids(first)
    assert ids[0].startswith("hz.al:-1:")
    second = await hz.send(button(ids[1], _message(first), user=ADMIN_MEMBER))
    page2 = said(second)
    assert "page 2 of 2" in page2
    assert "file-0" in page2
    assert "secret-elsewhere" not in page2
    # the same button pressed in another server reads that server's log, not this one's
    elsewhere = await hz.send(in_other_guild(button(ids[1], _message(first), user=ADMIN_MEMBER), OTHER_GUILD_ID))
    assert "file-0" not in said(elsewhere)


@pytest.mark.asyncio
async def test_audit_filters(hz: RunningBot) -> None:
    await _fill(hz)
    by_action = said(await hz.send(slash("audit", {"action": "capability"}, user=ADMIN_MEMBER)))
    assert "(1 entries" in by_action
    by_member = said(
        await hz.send(slash("audit", {"member": UserRef(user_payload(ALICE, "alice"))}, user=ADMIN_MEMBER))
    )
    assert "(1 entries" in by_member
    assert "secret-elsewhere" not in by_member
    recent = said(await hz.send(slash("audit", {"days": 1, "action": "file.get"}, user=ADMIN_MEMBER)))
    assert "(20 entries" in recent
    bad = said(await hz.send(slash("audit", {"action": "x:y"}, user=ADMIN_MEMBER)))
    assert "lowercase letters" in bad


@pytest.mark.asyncio
async def test_audit_exports_csv_and_jsonl(hz: RunningBot) -> None:
    await _fill(hz)
    shown = await hz.send(slash("audit", user=ADMIN_MEMBER))
    ids = _ids(shown)
    exported = await hz.send(button(ids[2], _message(shown), user=ADMIN_MEMBER))
    files = [*exported.files, *(f for call in exported.followups for f in call.files)]
    [sheet] = files
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8"))))
    assert len(rows) == 21
    assert rows[0]["target"] == "'=HYPERLINK(1)"
    assert all(r["target"] != "secret-elsewhere" for r in rows)
    lines_out = await hz.send(button(ids[3], _message(shown), user=ADMIN_MEMBER))
    [dump] = [*lines_out.files, *(f for call in lines_out.followups for f in call.files)]
    records = [json.loads(line) for line in dump.content.decode("utf-8").splitlines()]
    assert len(records) == 21
    assert records[0]["action"] == "capability.grant"
    assert records[0]["target"] == "=HYPERLINK(1)"
    assert records[-1]["target"] == "file-0"


@pytest.mark.asyncio
async def test_audit_needs_admin(hz: RunningBot) -> None:
    await _fill(hz)
    refused = await hz.send(slash("audit"))
    assert "`admin` capability" in said(refused)
    shown = await hz.send(slash("audit", user=ADMIN_MEMBER))
    pressed = await hz.send(button(_ids(shown)[2], _message(shown)))
    assert "`admin` capability" in said(pressed)
    assert not pressed.files
