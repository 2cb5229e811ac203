"""Exceptions raised by the engine.

    EngineError
    ├── SettingsError        a CLICKSTREAM_* variable has a bad value (names the variable)
    ├── BadRequest           the client sent something we refuse (maps to 4xx)
    │   ├── PayloadTooLarge  body over the size limit or too many events (413)
    │   ├── Unauthorized     missing or wrong API key / cookie (401)
    │   ├── Forbidden        a visitor asking for someone else's data (403)
    │   └── NotFound         no such profile or resource (404)
    └── Unavailable          a dependency (broker, Redis) cannot serve now (503)

HTTP handlers raise these; one handler in engine.api.errors maps them to JSON.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class SettingsError(EngineError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class BadRequest(EngineError):
    status = 400

    def __init__(self, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


class PayloadTooLarge(BadRequest):
    status = 413


class Unauthorized(BadRequest):
    status = 401


class Forbidden(BadRequest):
    status = 403


class NotFound(BadRequest):
    status = 404


class Unavailable(EngineError):
    status = 503

    def __init__(self, error: str, retry_after: int = 2) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after
