"""Which user agents are not people: crawlers, HTTP libraries and headless browsers. Pure.

The crawler patterns are the crawler-user-agents list (about 1,500 patterns: search
engines, SEO and AI crawlers, link previewers, monitors, and HTTP libraries such as
curl, python-requests, httpx or Go-http-client, which a back end would send with an
API key), plus the automation tools it misses. A request without a user agent is
not a browser either. Browsers' user agents repeat, so answers are kept per string.
"""

from __future__ import annotations

import re
from functools import lru_cache

import crawleruseragents

from engine.ingest.enrich import UA_MAX

HEADLESS = re.compile(r"Headless|PhantomJS|SlimerJS|Puppeteer|Playwright|Selenium|WebDriver|Lighthouse", re.IGNORECASE)


@lru_cache(maxsize=20_000)
def _is_bot(user_agent: str) -> bool:
    return HEADLESS.search(user_agent) is not None or crawleruseragents.is_crawler(user_agent)


def is_bot(user_agent: str | None) -> bool:
    if not user_agent or not user_agent.strip():
        return True
    return _is_bot(user_agent[:UA_MAX])
