"""Exceptions raised by the engine on purpose: domain errors, not HTTP responses.

    EngineError
    ├── SettingsError        a CLICKSTREAM_* variable has a bad value (names the variable)
    ├── InvalidInput         something a caller sent is refused; the message names the field
    │   ├── TooLarge         a body over its size limit, or too many events in one request
    │   └── TooSlow          a body that did not arrive in time
    ├── NotAuthenticated     no credential, or a wrong API key
    ├── AccessDenied         a credential that does not reach this person or action
    ├── NotFound             no such profile, segment, slot...
    ├── RateLimited          a client sent more than its share (carries retry_after)
    └── Unavailable          a dependency (broker, Redis) cannot serve now (carries retry_after)

Domain code raises these; engine.api.errors maps each class to a status code and
a JSON body, in one table.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""

    def __init__(self, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


class SettingsError(EngineError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class InvalidInput(EngineError):
    """The message starts with the field's path: `props.order.items[0].qty: expected ...`."""


class TooLarge(InvalidInput):
    pass


class TooSlow(InvalidInput):
    pass


class NotAuthenticated(EngineError):
    pass


class AccessDenied(EngineError):
    pass


class NotFound(EngineError):
    pass


class RateLimited(EngineError):
    def __init__(self, error: str, retry_after: int = 1, detail: Any = None) -> None:
        super().__init__(error, detail)
        self.retry_after = retry_after


class Unavailable(EngineError):
    def __init__(self, error: str, retry_after: int = 2, detail: Any = None) -> None:
        super().__init__(error, detail)
        self.retry_after = retry_after
