from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.fakes.interactions import ADMIN_MEMBER, DEFAULT_USER, GUILD_ID, RoleRef, member_payload, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot

TRAINERS = 1_100_000_000_000_000_555


@pytest.mark.asyncio
async def test_grant_and_revoke_a_capability(hz: RunningBot) -> None:
    member = member_payload(DEFAULT_USER, roles=[TRAINERS])
    refused = await hz.send(slash("jobs", subcommand="list", user=member))
    assert refused.content is not None
    assert "`train` capability" in refused.content
    not_admin = await hz.send(
        slash("admin", {"capability": "train", "role": RoleRef(TRAINERS)}, subcommand="grant", user=member)
    )
    assert not_admin.content is not None
    assert "`admin` capability" in not_admin.content

    granted = await hz.send(
        slash("admin", {"capability": "train", "role": RoleRef(TRAINERS)}, subcommand="grant", user=ADMIN_MEMBER)
    )
    assert granted.content is not None
    assert f"<@&{TRAINERS}>" in granted.content
    assert (await hz.services.guild_settings.effective(GUILD_ID, 0)).capability_roles == {"train": [TRAINERS]}
    allowed = await hz.send(slash("jobs", subcommand="list", user=member))
    assert allowed.content is not None
    assert "No training jobs yet" in allowed.content
    shown = await hz.send(slash("admin", subcommand="show", user=ADMIN_MEMBER))
    assert shown.content is not None
    assert f"`train`: <@&{TRAINERS}> and administrators" in shown.content
    assert "`chat`: everyone" in shown.content

    await hz.send(
        slash("admin", {"capability": "train", "role": RoleRef(TRAINERS)}, subcommand="revoke", user=ADMIN_MEMBER)
    )
    again = await hz.send(slash("jobs", subcommand="list", user=member))
    assert again.content is not None
    assert "`train` capability" in again.content
    entries = await hz.services.audit.recent(GUILD_ID)
    assert [e.action for e in entries[:2]] == ["capability.revoke", "capability.grant"]
