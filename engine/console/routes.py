"""The console's routes under /console/: sign-in, overview, people, segments, rules, experiments, recommendations.

Every route is `guarded` like the API's, by the console's own actions in the access
table (engine.api.access.RULES), with the key of the session cookie
(engine.console.session). A page asked for without a session sends the browser to
sign in; `?part=live` answers only the part of a page that updates itself
(engine/static/console.js polls it), as GET /console/rules/backtest answers the
backtest's progress. Data comes from engine.console.views; the backtest runs in
engine.console.backtest_job, a segment's download is the API's export
(engine.api.segments) page after page.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.api.access import find_key, guarded
from engine.api.params import text_param
from engine.api.responses import JSONResponse
from engine.profiles.segment_export import export_csv
from engine.console import views
from engine.console.backtest_job import CHOICES, hours_of
from engine.console.session import FORM_MAX_BYTES, ConsoleAccess, Sessions, form
from engine.errors import EngineError, InvalidInput, NotAuthenticated
from engine.recommend import als_store, prior_job, shrink
from engine.profiles.segment_sizes import SegmentSizes
from engine.api.errors import status_of

TEMPLATES = Path(__file__).resolve().parent / "templates"
ID_MAX = 256
PREVIEW_FORM_MAX_BYTES = 256 * 1024  # a pasted profile, form-encoded
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
)
_env.filters["thousands"] = lambda n: f"{n:,}"
_env.filters["basename"] = lambda path: Path(str(path)).name


def render(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status, headers=HEADERS)


def console_routes(sessions: Sessions, services, flow) -> list[Route]:
    access = ConsoleAccess(sessions)
    stores = services.stores
    backtests = services.backtests  # engine.console.backtest_job.Backtests
    sizes_over_time = SegmentSizes(stores.redis, services.settings.redis_prefix)

    def page(action: str, endpoint, form_max_bytes: int = FORM_MAX_BYTES):
        """The endpoint behind its access rule; no session: to the sign-in page; refusals as a page."""
        inner = guarded(access, action, endpoint)

        async def handler(request: Request) -> Response:
            request.state.form_max_bytes = form_max_bytes  # the CSRF check reads the form first
            try:
                return await inner(request)
            except NotAuthenticated:
                if request.method == "GET":
                    return RedirectResponse("/console/signin", status_code=303)
                return render("error.html", 401, message="sign in first", session={})
            except EngineError as exc:
                if status_of(exc) >= 500:
                    raise
                return render("error.html", status_of(exc), message=exc.error, session=_session(request))

        handler.access_action = action
        handler.__name__ = endpoint.__name__
        return handler

    def _session(request: Request) -> dict:
        caller = getattr(request.state, "caller", None)
        key = caller.key if caller is not None else None
        session = getattr(request.state, "session", {}) or {}
        return {
            "csrf": session.get("csrf", ""),
            "signed_in": key is not None,
            "can_erase": key is not None and "erase" in key.scopes,
        }

    def show(request: Request, name: str, active: str, **context) -> HTMLResponse:
        return render(name, session=_session(request), active=active, **context)

    # --- sign-in ----------------------------------------------------------------

    async def signin_form(request: Request) -> Response:
        session = request.state.session if request.state.session.get("csrf") else sessions.fresh()
        response = render("signin.html", session={"csrf": session["csrf"]}, error=None)
        return sessions.write(response, request, session)

    async def signin(request: Request) -> Response:
        offered = (await form(request)).get("key", "").strip()
        key = find_key(sessions.keys, offered) if offered else None
        if key is None or "read" not in key.scopes:
            message = (
                "That key is not one of this engine's API keys."
                if key is None
                else "That key lacks the read scope the console needs."
            )
            return render("signin.html", 401, session={"csrf": request.state.session.get("csrf", "")}, error=message)
        response = RedirectResponse("/console/", status_code=303)
        return sessions.write(response, request, sessions.fresh(key))  # a new CSRF token with the new rights

    async def signout(request: Request) -> Response:
        return sessions.write(RedirectResponse("/console/signin", status_code=303), request, None)

    async def home(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=308)

    # --- pages ------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        data = await views.overview(flow, services)
        if request.query_params.get("part") == "live":
            return render("_overview_live.html", **data)
        return show(request, "overview.html", "overview", **data)

    async def people(request: Request) -> Response:
        query = (text_param(request, "q", ID_MAX) or "").strip()
        found = (
            await views.person_page(query, stores, services.public_view, services.decider, services.rules)
            if query
            else None
        )
        if request.query_params.get("part") == "live":
            return render("_person_live.html", found=found)
        return show(
            request, "people.html", "people", query=query, found=found, erased=request.query_params.get("erased")
        )

    async def erase(request: Request) -> Response:
        profile_id = (await form(request)).get("id", "").strip()
        if not profile_id or len(profile_id) > ID_MAX:
            return render("error.html", 400, message="id: expected a visitor id or user id", session=_session(request))
        outcome = await stores.people.request_erasure(profile_id)
        return show(request, "erased.html", "people", outcome=outcome)

    async def segments(request: Request) -> Response:
        return show(
            request,
            "segments.html",
            "segments",
            segments=await views.segments_page(stores.segments, services.rules, sizes_over_time),
        )

    async def segment_download(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in {s.name for s in services.rules.current.segments}:
            return render("error.html", 404, message="no such segment", session=_session(request))
        pages = export_csv(stores.segments, stores.people, name)
        first = await anext(pages)  # before the headers go: a store out of reach is still an error page

        async def body():
            yield first
            async for text in pages:
                yield text

        filename = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80] or "segment"
        return StreamingResponse(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="segment-{filename}.csv"'},
        )

    async def segment(request: Request) -> Response:
        data = await views.segment_page(request.path_params["name"], stores.segments, services.rules, sizes_over_time)
        if data is None:
            return render("error.html", 404, message="no such segment", session=_session(request))
        return show(request, "segment.html", "segments", segment=data)

    async def rules(request: Request, status: int = 200, notice: str | None = None) -> Response:
        data = await views.rules_page(services.rules, services.served)
        if request.query_params.get("part") == "live":
            return render("_rules_live.html", **data)
        response = show(request, "rules.html", "rules", run=backtests.current, choices=CHOICES, notice=notice, **data)
        response.status_code = status
        return response

    async def backtest_start(request: Request) -> Response:
        hours = hours_of((await form(request)).get("hours"))
        if backtests.start(hours) is None:
            return await rules(request, 409, "A backtest is already running; this one finishes first.")
        return RedirectResponse("/console/rules#backtest", status_code=303)

    async def backtest_state(request: Request) -> Response:
        return render("_backtest.html", run=backtests.current)

    async def preview(request: Request) -> Response:
        data = await views.preview_page(dict(request.query_params), services.decider, services.rules)
        return show(request, "preview.html", "rules", slots=sorted(services.rules.current.slots), **data)

    async def preview_post(request: Request) -> Response:
        fields = await form(request)
        try:
            data = await views.preview_page(fields, services.decider, services.rules)
        except InvalidInput as exc:  # shown beside the form, the pasted text kept to fix
            context = {k: fields[k].strip() for k in views.PREVIEW_CONTEXT if (fields.get(k) or "").strip()}
            response = show(
                request,
                "preview.html",
                "rules",
                error=exc.error,
                profile=fields.get("profile", ""),
                pasted=fields.get("profile_json", ""),
                context=context,
                decisions=[],
            )
            response.status_code = 400
            return response
        return show(request, "preview.html", "rules", **data)

    async def export(request: Request) -> Response:
        query = (text_param(request, "q", ID_MAX, required=True) or "").strip()
        data = await stores.people.export(query)
        if data is None:
            return render("error.html", 404, message="no such profile", session=_session(request))
        if data["person"] is not None:
            data["person"] = await services.public_view(data["person"])
        return JSONResponse(
            data, headers={**HEADERS, "Content-Disposition": 'attachment; filename="clickstream-export.json"'}
        )

    async def recommendations(request: Request) -> Response:
        item = (text_param(request, "item", ID_MAX) or "").strip()
        visitor = (text_param(request, "visitor", ID_MAX) or "").strip()
        data = await views.recommendations_page(item, services.recommend, stores.cooccurrence) if item else None
        personal = await views.for_you_page(visitor, services.recommend) if visitor else None
        model = views.model_state(await als_store.info(stores.redis, services.settings.redis_prefix), views.now_ms())
        prior = views.prior_state(await prior_job.info(stores.redis, stores.cooccurrence.base), views.now_ms())
        return show(
            request,
            "recommendations.html",
            "recommendations",
            item=item,
            found=data,
            visitor=visitor,
            personal=personal,
            model=model,
            prior=prior,
            default_prior=f"{shrink.PRIOR_STRENGTH:g}",
        )

    async def experiments(request: Request) -> Response:
        chosen = (text_param(request, "id", ID_MAX) or "").strip()
        listed, report = await views.experiments_page(chosen, services.experiments)
        if chosen and report is None:
            return render("error.html", 404, message="no such experiment", session=_session(request))
        return show(request, "experiments.html", "experiments", experiments=listed, report=report)

    return [
        Route("/console", page("console_signin", home), methods=["GET"]),
        Route("/console/signin", page("console_signin", signin_form), methods=["GET"]),
        Route("/console/signin", page("console_signin", signin), methods=["POST"]),
        Route("/console/signout", page("console_signin", signout), methods=["POST"]),
        Route("/console/", page("console", overview), methods=["GET"]),
        Route("/console/people", page("console", people), methods=["GET"]),
        Route("/console/people/erase", page("console_erase", erase), methods=["POST"]),
        Route("/console/people/export", page("console_export", export), methods=["GET"]),
        Route("/console/segments", page("console", segments), methods=["GET"]),
        Route("/console/segments/{name}", page("console", segment), methods=["GET"]),
        Route("/console/segments/{name}/export", page("console_members", segment_download), methods=["GET"]),
        Route("/console/rules", page("console", rules), methods=["GET"]),
        Route("/console/rules/backtest", page("console_backtest", backtest_start), methods=["POST"]),
        Route("/console/rules/backtest", page("console", backtest_state), methods=["GET"]),
        Route("/console/rules/preview", page("console", preview), methods=["GET"]),
        Route("/console/rules/preview", page("console", preview_post, PREVIEW_FORM_MAX_BYTES), methods=["POST"]),
        Route("/console/recommendations", page("console", recommendations), methods=["GET"]),
        Route("/console/experiments", page("console", experiments), methods=["GET"]),
    ]
