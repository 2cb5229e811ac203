"""Who may ask for what: every route's access rule, and the one function that enforces them.

A caller is one of
    key        `Authorization: Bearer KEY`, one of CLICKSTREAM_API_KEYS, with scopes:
               read (profiles, segments, reports), write (trusted events, catalog,
               preferences), erase (export and erase any person).
    visitor    the holder of a `clickstream_vid` cookie. It proves that one visitor id,
               and the person it is linked to by a verified identify; never a user id.
    anonymous  neither.

    action          route                                  key      visitor          anonymous
    collect         POST /v1/events, GET /v1/pixel.gif     write    own events       untrusted events
    decide          POST /v1/decide                        read     own visitor      a new visitor
    also_bought     GET /v1/recommendations/also-bought    read     own person       the item's list only
    for_you         GET /v1/recommendations/for-you        read     own person       no
    recently_viewed GET /v1/recommendations/recently-viewed read    own person       no
    profile         GET /v1/profiles/{id}                  read     no               no
    export          GET /v1/profiles/{id}/export           erase    own person       no
    erase           DELETE /v1/profiles/{id}               erase    own person       no
    preferences     PUT /v1/profiles/{id}/preferences      write    own person       no
    segments        GET /v1/segments[/{name}]              read     no               no
    segment_export  GET /v1/segments/{name}/export         read     no               no
    reports         GET /v1/slots/{slot}/report            read     no               no
    experiments     GET /v1/experiments[/{id}]             read     no               no
    catalog         PUT /v1/catalog/items                  write    no               no
    demo_login      POST /demo/login                       -        yes              yes   (only with CLICKSTREAM_DEMO_LOGIN)
    console_signin  /console/signin, /console/signout      -        yes              yes
    console         GET /console/ and its pages (and the   read     no               no
                    preview's POST /console/rules/preview)
    console_erase   POST /console/people/erase             erase    no               no
    console_export  GET /console/people/export             erase    no               no
    console_members GET /console/segments/{name}/export    read     no               no
    console_backtest POST /console/rules/backtest         read     no               no
    public          /healthz, /metrics, /demo/, /static/   -        yes              yes

The console's key comes from its signed session cookie, given once on its sign-in page
(engine.console.session); the same rules apply to it, and every console POST carries
the session's CSRF token.
"Own visitor": without a key the visitor is the cookie's, always; a visitor_id in the
body or query that differs from it is refused with 403 (401 when there is no cookie).
"Own person": the cookie's visitor id, or the user id that visitor is linked to (only a
verified identify links: engine.ingest.trust). Which events a caller may send is the
collector's rule (engine.ingest.trust): without a key, the cookie's visitor's own, and
consent, preference, identify and purchase events only with that visitor's cookie.
demo_login signs any user id for the demo shop: it exists only where `clickstream up`
runs the embedded default on one machine (engine.api.demo).
Every route is registered through `guarded`, and the app refuses to start with one that is not.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import Awaitable, Callable

from starlette.requests import Request

from engine.api.cookies import visitor_cookie
from engine.errors import AccessDenied, NotAuthenticated
from engine.settings import ApiKey


class Reach(enum.Enum):
    NOBODY = "no"
    OWN_VISITOR = "own visitor"
    OWN_PERSON = "own person"
    EVERYONE = "yes"


@dataclass(frozen=True)
class Rule:
    scope: str | None  # what a key needs (None: a key adds nothing)
    visitor: Reach  # what the cookie's holder reaches
    anonymous: bool  # whether a caller with neither may


RULES: dict[str, Rule] = {
    "collect": Rule("write", Reach.EVERYONE, True),
    "decide": Rule("read", Reach.OWN_VISITOR, True),
    "also_bought": Rule("read", Reach.OWN_PERSON, True),
    "for_you": Rule("read", Reach.OWN_PERSON, False),
    "recently_viewed": Rule("read", Reach.OWN_PERSON, False),
    "profile": Rule("read", Reach.NOBODY, False),
    "export": Rule("erase", Reach.OWN_PERSON, False),
    "erase": Rule("erase", Reach.OWN_PERSON, False),
    "preferences": Rule("write", Reach.OWN_PERSON, False),
    "segments": Rule("read", Reach.NOBODY, False),
    "segment_export": Rule("read", Reach.NOBODY, False),
    "reports": Rule("read", Reach.NOBODY, False),
    "experiments": Rule("read", Reach.NOBODY, False),
    "catalog": Rule("write", Reach.NOBODY, False),
    "demo_login": Rule(None, Reach.EVERYONE, True),
    "console_signin": Rule(None, Reach.EVERYONE, True),
    "console": Rule("read", Reach.NOBODY, False),
    "console_erase": Rule("erase", Reach.NOBODY, False),
    "console_export": Rule("erase", Reach.NOBODY, False),
    "console_members": Rule("read", Reach.NOBODY, False),
    "console_backtest": Rule("read", Reach.NOBODY, False),
    "public": Rule(None, Reach.EVERYONE, True),
}


@dataclass(frozen=True)
class Caller:
    key: ApiKey | None
    visitor_id: str | None  # the cookie's, when it holds an id the engine issues

    @property
    def trusted(self) -> bool:
        """A back end with a key: its events are trusted, its identifies verified."""
        return self.key is not None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def find_key(keys: tuple[ApiKey, ...], token: str) -> ApiKey | None:
    """Compares with every key in constant time, so timing tells nothing of a key's prefix."""
    offered = token.encode()
    found = None
    for key in keys:
        if hmac.compare_digest(key.secret.encode(), offered):
            found = key
    return found


LinkedUser = Callable[[str], Awaitable[str | None]]  # visitor id -> the user id it is linked to


class Access:
    def __init__(self, keys: tuple[ApiKey, ...], linked_user: LinkedUser | None = None) -> None:
        self.keys = keys
        self.linked_user = linked_user

    def caller(self, request: Request) -> Caller:
        token = bearer_token(request)
        if token is None:
            return Caller(None, visitor_cookie(request))
        key = find_key(self.keys, token)
        if key is None:
            raise NotAuthenticated("wrong API key")
        return Caller(key, visitor_cookie(request))

    async def check(self, request: Request, action: str, subject: str | None = None, field: str = "id") -> Caller:
        """The caller, if `action` on `subject` (a visitor id, or a profile id named by `field`) is theirs to do."""
        rule = RULES[action]
        caller = self.caller(request)
        if caller.key is not None:
            if rule.scope is not None and rule.scope not in caller.key.scopes:
                raise AccessDenied(f"this API key lacks the {rule.scope} scope", {"scopes": sorted(caller.key.scopes)})
            return caller
        if rule.visitor is Reach.EVERYONE:
            return caller
        if rule.visitor is Reach.NOBODY:
            raise NotAuthenticated("missing API key", "send Authorization: Bearer KEY")
        if caller.visitor_id is None:
            if subject is not None or not rule.anonymous:
                raise NotAuthenticated(
                    "missing API key or visitor cookie", f"{field}: a visitor may only ask for themselves"
                )
            return caller
        if subject is None or subject == caller.visitor_id:
            return caller
        if rule.visitor is Reach.OWN_PERSON and self.linked_user is not None:
            if await self.linked_user(caller.visitor_id) == subject:
                return caller
        raise AccessDenied(f"{field}: a visitor may only ask for themselves (their cookie's visitor id)")


Endpoint = Callable[[Request], Awaitable[object]]
Subject = Callable[[Request], Awaitable[str | None]]


def guarded(access: Access, action: str, endpoint: Endpoint, subject: Subject | None = None) -> Endpoint:
    """The route's endpoint behind its access rule; the caller is in `request.state.caller`."""
    RULES[action]  # an unknown action fails when the app is built, not on a request

    async def handler(request: Request):
        if subject is None:
            request.state.caller = await access.check(request, action)
        else:
            request.state.caller = await access.check(request, action, await subject(request), subject.field)
        return await endpoint(request)

    handler.access_action = action
    handler.__name__ = getattr(endpoint, "__name__", "handler")
    return handler


def subject(field: str, read: Subject) -> Subject:
    """Where a route names the person it is about; `field` goes into the error."""
    read.field = field
    return read


def path_param(name: str) -> Subject:
    async def read(request: Request) -> str | None:
        return request.path_params.get(name)

    return subject(name, read)


def query_param(name: str) -> Subject:
    async def read(request: Request) -> str | None:
        return request.query_params.get(name) or None

    return subject(name, read)
