"""Errors raised by hypotez.

Every error that a user can cause or that a remote service can return derives from one root, so the
bot's single error handler can turn it into a plain-language reply.  Anything that does not derive from
:class:`HypotezError` is a bug: it is logged with a reference id and the user sees only that id.

Hierarchy::

    HypotezError                      root; ``user_message`` is safe to show in Discord
    ├── ConfigError                   a setting is missing or invalid (names the setting)
    ├── NotFoundError                 an id, name or path that does not exist (``kind``, ``key``)
    ├── InvalidInputError             malformed input: a bad option, file or line (``details``)
    ├── PermissionDeniedError         the member lacks a capability (``capability``)
    ├── StorageError                  the database cannot be reached or is not migrated, or a data
    │                                 directory operation (archiving, exporting) failed
    └── BackendError                  a remote model service failed (``backend``, ``status``)
        ├── BackendTimeoutError       it did not answer in time
        ├── BackendRateLimitError     it asked us to slow down (``retry_after``)
        └── BackendAuthError          the key is missing, invalid or lacks permission
"""

from __future__ import annotations

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendRateLimitError",
    "BackendTimeoutError",
    "ConfigError",
    "HypotezError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "StorageError",
]


class HypotezError(Exception):
    """Root of every error hypotez raises on purpose.

    ``str(error)`` is a complete, plain-language sentence that never contains a secret.
    """

    @property
    def user_message(self) -> str:
        """The text shown to the member who caused the error."""
        return str(self)


class ConfigError(HypotezError):
    """A setting is missing or invalid."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class NotFoundError(HypotezError):
    """Something named by the user does not exist."""

    def __init__(self, kind: str, key: object, message: str | None = None) -> None:
        super().__init__(message or f"No {kind} called {key!s} was found.")
        self.kind = kind
        self.key = key


class InvalidInputError(HypotezError):
    """Input that cannot be used as given."""

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class PermissionDeniedError(HypotezError):
    """The member lacks a capability."""

    def __init__(self, capability: str, message: str | None = None) -> None:
        super().__init__(
            message or f"You need the `{capability}` capability for this. Ask a server administrator to grant it."
        )
        self.capability = capability


class StorageError(HypotezError):
    """The database cannot be used, or a file operation in the data directory failed."""


class BackendError(HypotezError):
    """A remote model service failed."""

    def __init__(self, message: str, *, backend: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.status = status


class BackendTimeoutError(BackendError):
    """The service did not answer in time."""


class BackendRateLimitError(BackendError):
    """The service is rate limiting us."""

    def __init__(
        self, message: str, *, backend: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, backend=backend, status=status)
        self.retry_after = retry_after


class BackendAuthError(BackendError):
    """The key is missing, invalid or not allowed to do this."""
