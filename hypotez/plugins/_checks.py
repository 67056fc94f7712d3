"""The capability check every command uses (components and modals call :meth:`Caller.require`)."""

from __future__ import annotations

import lightbulb

from hypotez.config import Capability
from hypotez.permissions import Caller

__all__ = ["require"]


def require(capability: Capability) -> lightbulb.ExecutionHook:
    """A CHECKS hook failing with :class:`~hypotez.errors.PermissionDeniedError` without ``capability``."""

    @lightbulb.hook(lightbulb.ExecutionSteps.CHECKS, name=f"require_{capability.value}")
    def _check(_: lightbulb.ExecutionPipeline, __: lightbulb.Context, caller: Caller = lightbulb.di.INJECTED) -> None:
        caller.require(capability)

    return _check
