"""One engine for the attacks: a worker and the HTTP app, with keys of each scope and a named origin.

Each attack runs as a stranger would: plain HTTP, a browser's user agent, no key
unless the test says so; the victim's data is made the way a real shop makes it
(the visitor's browser with their cookie, the shop's back end with its key).
"""

from __future__ import annotations

import pytest

from attacks import KEY, ORIGIN, SCOPED
from helpers import Engine, started


@pytest.fixture(scope="session")
async def secure(settings_for, tmp_session):
    keys = (KEY, *(f"{name}:{scope}" for name, scope in SCOPED.items()))
    running = await started(Engine(settings_for(api_keys=keys, site_origins=(ORIGIN,)), tmp_session / "secure"))
    yield running
    running.stop()
