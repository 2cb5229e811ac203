"""Attacks on identity: a forged cookie, an unverified identify, a second user on one cookie."""

import pytest


from attacks import T0, auth, customer, profile_when, send
from helpers import unique, user_hash, wait_until


async def test_a_cookie_equal_to_a_user_id_is_no_one(secure):
    browser, vid, user = await customer(secure, traits={"email": "ada@example.com"})
    await browser.aclose()
    async with secure.client(cookies={"clickstream_vid": user}) as forged:
        exported = await forged.get(f"/v1/profiles/{user}/export")
        erased = await forged.delete(f"/v1/profiles/{user}")
        prefs = await forged.put(f"/v1/profiles/{user}/preferences", json={"do_not_personalize": True})
    for response in (exported, erased, prefs):
        assert response.status_code == 401 and response.json()["error"], response.text
    person = await profile_when(secure, user, lambda p: True, "the customer")
    assert person["traits"]["email"] == "ada@example.com" and person["preferences"] == {}


async def test_an_unverified_identify_reaches_no_one(secure):
    browser, vid, user = await customer(
        secure,
        traits={"first_name": "Ada"},
        order={"id": unique("order"), "revenue": 50.0, "items": [{"id": "ring", "price": 50.0}]},
    )
    await browser.aclose()
    async with secure.client() as stranger:
        await send(stranger, [{"type": "page_view", "url": "/", "ts": T0}])
        mine = stranger.cookies["clickstream_vid"]
        # No hash, a wrong hash, another user's hash, and server fields forged at the top level.
        await send(
            stranger,
            [
                {"type": "identify", "user_id": user, "ts": T0 + 1},
                {"type": "identify", "user_id": user, "ts": T0 + 2, "props": {"user_hash": "0" * 64}},
                {"type": "identify", "user_id": user, "ts": T0 + 3, "props": {"user_hash": user_hash("someone-else")}},
                {"type": "identify", "user_id": user, "ts": T0 + 4, "verified": True, "trusted": True},
            ],
        )
        claimed = await profile_when(secure, mine, lambda p: p["counts"].get("identify") == 4, "the claims applied")
        export = await stranger.get(f"/v1/profiles/{user}/export")
        own = await stranger.get(f"/v1/profiles/{mine}/export")
        decided = await stranger.post("/v1/decide", json={"slots": ["hero"]})
    assert export.status_code == 403 and export.json()["error"].startswith("profile_id:")
    assert own.status_code == 200
    own = own.json()
    assert own["user_id"] is None and own["person"]["traits"] == {} and own["person"]["commerce"]["orders"] == 0
    assert "claimed_user_id" not in own["person"] and all("claimed_user_id" not in p for p in own["profiles"].values())
    assert "Ada" not in decided.json()["decisions"]["hero"]["content"]
    # The claim is kept for the shop (a key holder), and the customer is untouched.
    assert claimed["claimed_user_id"] == user and claimed["user_id"] is None and claimed["kind"] == "anonymous"
    person = await profile_when(secure, user, lambda p: True, "the customer")
    assert person["visitor_ids"] == [vid]


async def test_a_real_customer_reaches_their_merged_profile_with_a_valid_hash(secure):
    order = {"id": unique("order"), "revenue": 30.0, "items": [{"id": "scarf", "price": 30.0}]}
    laptop, laptop_vid, user = await customer(secure, traits={"first_name": "Ada"}, order=order)
    await laptop.aclose()
    async with secure.client() as phone:
        await send(phone, [{"type": "page_view", "url": "/", "ts": T0}])
        phone_vid = phone.cookies["clickstream_vid"]
        await send(
            phone, [{"type": "identify", "user_id": user, "ts": T0 + 5, "props": {"user_hash": user_hash(user)}}]
        )
        await profile_when(secure, user, lambda p: len(p["visitor_ids"]) == 2, "both devices linked")
        async with secure.client() as tablet:  # the same login without the back end's hash links nothing
            await send(
                tablet,
                [{"type": "identify", "user_id": user, "ts": T0 + 6, "props": {"traits": {"first_name": "Eve"}}}],
            )
            tablet_vid = tablet.cookies["clickstream_vid"]
        await profile_when(secure, tablet_vid, lambda p: p.get("claimed_user_id") == user, "the tablet's claim")
        export = await phone.get(f"/v1/profiles/{user}/export")
        decided = await phone.post("/v1/decide", json={"slots": ["hero"]})
        assert export.status_code == 200, export.text
        person = export.json()["person"]
        assert person["traits"]["first_name"] == "Ada" and person["commerce"]["orders"] == 1
        assert sorted(export.json()["visitor_ids"]) == sorted([laptop_vid, phone_vid])  # not the tablet
        assert "Ada" in decided.json()["decisions"]["hero"]["content"]
        erased = await phone.delete(f"/v1/profiles/{phone_vid}")
    assert erased.status_code == 200 and sorted(erased.json()["visitor_ids"]) == sorted([laptop_vid, phone_vid])
    async with secure.client() as client:
        assert (await client.get(f"/v1/profiles/{user}", headers=auth())).status_code == 404


@pytest.mark.parametrize("erased", ["second", "first"])
async def test_a_refused_second_user_leaves_the_first_users_traits_and_both_logs_show_it(secure, erased):
    device, vid, first = await customer(secure, traits={"first_name": "Ada", "email": "ada@example.com"})
    second = unique("user")
    await send(
        device,
        [
            {
                "type": "identify",
                "user_id": second,
                "ts": T0 + 10,
                "props": {"traits": {"first_name": "Eve", "email": "eve@example.com"}, "user_hash": user_hash(second)},
            }
        ],
    )
    await device.aclose()

    async def refusals(user):
        async with secure.client() as client:
            r = await client.get(f"/v1/profiles/{user}/export", headers=auth())
        return [e for e in r.json()["audit"] if e["action"] == "refused"] if r.status_code == 200 else []

    theirs = await wait_until(lambda: refusals(second), timeout=30, message="the refusal in the second user's log")
    ours = await wait_until(lambda: refusals(first), timeout=30, message="the refusal in the first user's log")
    assert theirs[0]["visitor_id"] == ours[0]["visitor_id"] == vid
    assert second not in str(ours) and "eve@example.com" not in str(ours)
    person = await profile_when(secure, first, lambda p: p["counts"].get("identify") == 2, "both identifies applied")
    assert person["traits"] == {"first_name": "Ada", "email": "ada@example.com"}
    assert person["user_id"] == first and person["visitor_ids"] == [vid]

    # Either person's erasure removes the refusal from both logs.
    gone, kept = (second, first) if erased == "second" else (first, second)
    async with secure.client() as client:
        assert (await client.delete(f"/v1/profiles/{gone}", headers=auth())).status_code == 200
    assert await refusals(kept) == [] and await refusals(gone) == []
