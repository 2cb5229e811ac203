"""The request context rules see: what the site sent, plus what the server knows.

Country comes from the CDN's header when there is one (CLICKSTREAM_COUNTRY_HEADER,
e.g. cf-ipcountry), else from the site's context. Weather is whatever the site
sends; a WeatherProvider can fill it in from a live source instead
(CLICKSTREAM_WEATHER_PROVIDER=package.module:ClassName, constructed with no
arguments), and its answer is cached per place for ten minutes.
"""

from __future__ import annotations

import importlib
import logging
from typing import Protocol

from cachetools import TTLCache

from engine.errors import InvalidInput

log = logging.getLogger("engine.rules")
MAX_KEYS = 50
MAX_TEXT = 512
PLACES_CACHED = 10_000  # weather answers kept per process, each for CachedWeather.ttl_s
_MISSING = object()


def device_from_user_agent(user_agent: str) -> str:
    ua = user_agent.lower()
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if "mobi" in ua or "iphone" in ua or "android" in ua:
        return "mobile"
    return "desktop"


def check_context(raw: object) -> dict:
    """The site's context, checked: a flat object of short plain values."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("context: expected an object of names to plain values")
    if len(raw) > MAX_KEYS:
        raise InvalidInput(f"context: at most {MAX_KEYS} entries")
    out = {}
    for key, value in raw.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise InvalidInput(f"context.{str(key)[:40]}: expected text, a number or true/false")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise InvalidInput(f"context.{str(key)[:40]}: longer than {MAX_TEXT} characters")
        out[str(key)[:64]] = value
    return out


def build_context(site: dict, headers, country_header: str) -> dict:
    context = dict(site)
    country = headers.get(country_header) if country_header else None
    if country and country.upper() not in ("XX", "T1"):  # Cloudflare's unknown and Tor
        context["country"] = country
    if "device" not in context and headers.get("user-agent"):
        context["device"] = device_from_user_agent(headers["user-agent"])
    return context


class WeatherProvider(Protocol):
    async def weather(self, context: dict) -> str | None:
        """A weather word (rain, snow, sun, clouds...) for the visitor's place, or None."""


class CachedWeather:
    def __init__(self, provider: WeatherProvider, ttl_s: float = 600.0) -> None:
        self.provider = provider
        self.ttl_s = ttl_s
        self.cache: TTLCache = TTLCache(PLACES_CACHED, ttl_s)  # (country, region, city) -> weather word or None

    async def weather(self, context: dict) -> str | None:
        place = (context.get("country"), context.get("region"), context.get("city"))
        hit = self.cache.get(place, _MISSING)
        if hit is not _MISSING:
            return hit
        try:
            answer = await self.provider.weather(context)
        except Exception as exc:  # a weather outage must not break decisions
            log.warning("weather provider failed: %r", exc)
            answer = None
        self.cache[place] = answer
        return answer


def load_weather_provider(spec: str | None) -> CachedWeather | None:
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        provider = getattr(importlib.import_module(module), name)()
    except Exception as exc:
        raise ValueError(f"CLICKSTREAM_WEATHER_PROVIDER: cannot load {spec!r}: {exc}") from None
    return CachedWeather(provider)
