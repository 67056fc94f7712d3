from __future__ import annotations

import pytest

from hypotez.config import Capability
from hypotez.errors import PermissionDeniedError
from hypotez.permissions import Caller, has_capability


@pytest.mark.parametrize(
    ("capability", "admin", "roles", "grants", "expected"),
    [
        (Capability.CHAT, False, set(), {}, True),
        (Capability.CORRECT, False, set(), {}, True),
        (Capability.FEEDBACK, False, set(), {}, True),
        (Capability.TRAIN, False, set(), {}, False),
        (Capability.CURATE, False, {5}, {}, False),
        (Capability.TRAIN, True, set(), {}, True),
        (Capability.TRAIN, False, {5}, {"train": [5]}, True),
        (Capability.TRAIN, False, {6}, {"train": [5]}, False),
        (Capability.CHAT, False, {6}, {"chat": [5]}, False),  # a guild can restrict an open capability
        (Capability.FILES, False, {9}, {"admin": [9]}, True),  # the admin capability grants everything
    ],
)
def test_has_capability(
    capability: Capability, admin: bool, roles: set[int], grants: dict[str, list[int]], expected: bool
) -> None:
    assert has_capability(capability, in_guild=True, is_admin=admin, member_roles=roles, grants=grants) is expected


def test_direct_messages_only_have_open_capabilities() -> None:
    caller = Caller(user_id=1, guild_id=None, channel_id=2, is_admin=True)
    assert caller.can(Capability.CHAT)
    assert not caller.can(Capability.TRAIN)
    with pytest.raises(PermissionDeniedError, match="`train` capability"):
        caller.require(Capability.TRAIN)
