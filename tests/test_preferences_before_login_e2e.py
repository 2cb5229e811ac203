"""Preferences a back end sets for a user id before any device of theirs logs in (real broker and Redis)."""

from helpers import unique, user_hash, wait_until

AUTH = {"Authorization": "Bearer test-key"}


async def test_preferences_set_for_a_user_not_seen_yet_apply_at_their_first_login(engine, redis_client):
    user = f"{unique('user')}@example.com"
    async with engine.client() as shop, engine.client() as browser:
        put = await shop.put(
            f"/v1/profiles/{user}/preferences", json={"hide": ["shoes"], "language": "nb"}, headers=AUTH
        )
        assert put.status_code == 200, put.text
        sent = await browser.post(
            "/v1/events",
            json={
                "events": [
                    {"type": "page_view"},
                    {"type": "identify", "user_id": user, "props": {"user_hash": user_hash(user)}},
                ]
            },
        )
        assert sent.status_code == 202 and sent.json()["accepted"] == 2, sent.text

        async def identified():
            r = await shop.get(f"/v1/profiles/{user}", headers=AUTH)
            return r.status_code == 200 and r.json()

        person = await wait_until(identified, timeout=30, message="the user's profile")
        assert person["preferences"] == {"hide": ["shoes"], "language": "nb"}
        too_long = await shop.put(f"/v1/profiles/{'u' * 129}/preferences", json={"language": "nb"}, headers=AUTH)
        assert too_long.status_code == 400 and too_long.json()["error"].startswith("id: ")
    keys = [k async for k in redis_client.scan_iter(match=f"{engine.settings.redis_prefix}:*")]
    assert not [k for k in keys if user.encode() in k]  # user ids never in key names
