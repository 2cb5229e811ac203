"""A forged segment cursor is a 400 naming `cursor` on both segment routes, never a 5xx (real engine)."""

import base64

import pytest

AUTH = {"Authorization": "Bearer test-key"}


def forged(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("raw", [b'[NaN, "x"]', b"[" + b"9" * 350 + b', "x"]'], ids=["nan", "huge-integer"])
@pytest.mark.parametrize("path", ["/v1/segments/buyers", "/v1/segments/buyers/export"])
async def test_a_cursor_with_no_usable_score_is_a_400(engine, path, raw):
    async with engine.client() as client:
        r = await client.get(path, params={"cursor": forged(raw)}, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("cursor: ")
