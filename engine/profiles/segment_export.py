"""A segment's export, page by page: the rows a mailing needs, as CSV or JSON lines.

One code path for GET /v1/segments/NAME/export (a page per request, the cursor in a
header) and `clickstream segments export` (every page, one after another): members are
read by score, highest first, and only identified members with marketing consent and
an e-mail address become rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from engine.destinations.webhook import MARKETING_TRAITS, has_marketing_consent

EXPORT_FIELDS = ("id", "email", "first_name", "language", "score")
FORMATS = ("csv", "jsonl")
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def export_row(member: str, score: float, person: dict | None) -> dict | None:
    """What a mailing needs of an identified member with marketing consent; None for anyone else."""
    if person is None or not person.get("user_id") or person.get("id") != member or not has_marketing_consent(person):
        return None
    traits = person.get("traits") or {}
    if not isinstance(traits.get("email"), str) or not traits["email"]:
        return None
    return {"id": member, **{k: traits.get(k) for k in MARKETING_TRAITS}, "score": score}


@dataclass
class ExportPage:
    rows: list[dict]
    read: int  # members read (more than rows: the others are not exported)
    after: tuple[float, str] | None  # where the next page starts (score, id); None: the last page


async def export_page(index, people, name: str, after: tuple[float, str] | None, limit: int) -> ExportPage:
    """`limit` members of the segment after `after`, as export rows."""
    members = await index.page(name, after, limit + 1)
    more = len(members) > limit
    members = members[:limit]
    rows = [row for row in [export_row(m, sc, await people.person(m)) for m, sc in members] if row]
    return ExportPage(rows, len(members), (members[-1][1], members[-1][0]) if more else None)


async def export_pages(index, people, name: str, limit: int = 1000) -> AsyncIterator[ExportPage]:
    """Every page of the segment, following each page's position."""
    after = None
    while True:
        page = await export_page(index, people, name, after, limit)
        yield page
        if page.after is None:
            return
        after = page.after


async def export_csv(index, people, name: str, limit: int = 1000) -> AsyncIterator[str]:
    """The whole export as CSV text, page after page of `limit` members, the header line first."""
    first = True
    async for page in export_pages(index, people, name, limit):
        yield render(page.rows, "csv", header=first)
        first = False


def render(rows: list[dict], form: str, header: bool = True) -> str:
    """Rows as CSV (with its header line unless `header` is false: a later page) or JSON lines."""
    if form == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, EXPORT_FIELDS, extrasaction="ignore")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)


async def write_all(pages: AsyncIterator[ExportPage], form: str, out, progress=None) -> int:
    """Every page's rows to `out` (CSV: one header line, even for no rows); `progress.update(members read)`
    per page. Returns the rows written."""
    written, first = 0, True
    async for page in pages:
        out.write(render(page.rows, form, header=first))
        first = False
        written += len(page.rows)
        if progress is not None:
            progress.update(page.read)
    return written
