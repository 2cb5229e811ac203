"""Experiment routes: every experiment with its state, and one experiment's report (API key, read)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.responses import JSONResponse
from engine.errors import NotFound
from engine.experiments.service import Experiments


def experiment_routes(access: Access, experiments: Experiments) -> list[Route]:
    async def list_experiments(request: Request) -> JSONResponse:
        return JSONResponse({"experiments": await experiments.list()})

    async def experiment_report(request: Request) -> JSONResponse:
        experiment = request.path_params["experiment_id"]
        found = await experiments.report(experiment)
        if found is None:
            raise NotFound("no such experiment", {"id": experiment[:200]})
        return JSONResponse(found)

    return [
        Route("/v1/experiments", guarded(access, "experiments", list_experiments), methods=["GET"]),
        Route("/v1/experiments/{experiment_id}", guarded(access, "experiments", experiment_report), methods=["GET"]),
    ]
