"""The console's session: an API key given once on the sign-in page, then a signed cookie.

The cookie (HttpOnly, SameSite=Strict, Secure over https) holds a CSRF token and, once
signed in, a mark of the key (an HMAC of it under the console secret), never the key:
a stolen cookie does not give the key away, and removing the key from
CLICKSTREAM_API_KEYS ends its sessions. Signed with itsdangerous, valid MAX_AGE_S.
Every POST must carry the session's CSRF token in its `csrf` field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from engine.api.access import Access, Caller
from engine.api.body import read_body
from engine.errors import AccessDenied, InvalidInput
from engine.settings import ApiKey, Settings

SECRET_FILE = "console-secret"
COOKIE = "clickstream_console"
PATH = "/console"
MAX_AGE_S = 12 * 3600
FORM_MAX_BYTES = 4096


def console_secret(settings: Settings) -> str:
    """CLICKSTREAM_CONSOLE_SECRET, else one kept in the data folder (made once), so sessions outlive a restart."""
    if settings.console_secret:
        return settings.console_secret
    from engine.embedded import folder_secret

    return folder_secret(settings.data_dir, SECRET_FILE)


def key_mark(secret: str, key: ApiKey) -> str:
    return hmac.new(secret.encode(), key.secret.encode(), hashlib.sha256).hexdigest()


class Sessions:
    def __init__(self, secret: str, keys: tuple[ApiKey, ...]) -> None:
        self.secret = secret
        self.keys = keys
        self.serializer = URLSafeTimedSerializer(secret, salt="clickstream-console-session")

    def read(self, request: Request) -> dict:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return {}
        try:
            session = self.serializer.loads(raw, max_age=MAX_AGE_S)
        except BadSignature:
            return {}
        return session if isinstance(session, dict) else {}

    def key_of(self, session: dict) -> ApiKey | None:
        """The configured key the session was signed in with, compared in constant time."""
        mark = session.get("key")
        if not isinstance(mark, str):
            return None
        found = None
        for key in self.keys:
            if hmac.compare_digest(key_mark(self.secret, key), mark):
                found = key
        return found

    def fresh(self, key: ApiKey | None = None) -> dict:
        session = {"csrf": secrets.token_urlsafe(24)}
        if key is not None:
            session["key"] = key_mark(self.secret, key)
        return session

    def write(self, response: Response, request: Request, session: dict | None) -> Response:
        if session is None:
            response.delete_cookie(COOKIE, path=PATH)
            return response
        response.set_cookie(
            COOKIE,
            self.serializer.dumps(session),
            max_age=MAX_AGE_S,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response


async def form(request: Request) -> dict[str, str]:
    """A bounded urlencoded form: each field's first value (read once per request, then kept).

    At most FORM_MAX_BYTES, or the route's own `request.state.form_max_bytes` (a pasted profile)."""
    kept = getattr(request.state, "form", None)
    if kept is not None:
        return kept
    body = await read_body(request, getattr(request.state, "form_max_bytes", FORM_MAX_BYTES))
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("body: expected a form") from None
    request.state.form = {name: values[0] for name, values in fields.items()}
    return request.state.form


class ConsoleAccess(Access):
    """The access table's rules with the key of the session cookie instead of a bearer header.

    A POST must carry the session's CSRF token; no cookie means no key, so the
    console's rules (engine.api.access.RULES) send such a caller to sign in.
    """

    def __init__(self, sessions: Sessions) -> None:
        super().__init__(sessions.keys)
        self.sessions = sessions

    def caller(self, request: Request) -> Caller:
        session = self.sessions.read(request)
        request.state.session = session
        return Caller(self.sessions.key_of(session), None)

    async def check(self, request: Request, action: str, subject: str | None = None, field: str = "id") -> Caller:
        caller = await super().check(request, action, subject, field)
        if request.method == "POST":
            expected = request.state.session.get("csrf")
            offered = (await form(request)).get("csrf", "")
            if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), offered.encode()):
                raise AccessDenied("csrf: the form's token does not match this session's (reload the page)")
        return caller
