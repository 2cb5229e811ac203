"""Attacks on decide: someone else's visitor id in the body, and consent a back end would ignore."""

from attacks import T0, auth, customer, profile_when, send

RAIN = {"weather": "rain"}  # the demo rules' umbrella rule matches it


async def test_without_a_key_the_body_visitor_id_is_not_the_visitor(secure):
    victim, victim_vid, _ = await customer(secure, traits={"first_name": "Ada"})
    own = await victim.post("/v1/decide", json={"slots": ["hero"]})
    assert "Ada" in own.json()["decisions"]["hero"]["content"]  # what the stranger is after
    await victim.aclose()
    async with secure.client() as nobody:
        no_cookie = await nobody.post("/v1/decide", json={"visitor_id": victim_vid, "slots": ["hero"]})
    async with secure.client() as stranger:
        await send(stranger, [{"type": "page_view", "url": "/", "ts": T0}])
        foreign = await stranger.post("/v1/decide", json={"visitor_id": victim_vid, "slots": ["hero"]})
        by_user = await stranger.post("/v1/decide", json={"user_id": "anyone", "slots": ["hero"]})
    assert no_cookie.status_code == 401 and no_cookie.json()["error"]
    assert foreign.status_code == 403 and foreign.json()["error"].startswith("visitor_id:")
    assert by_user.status_code == 403 and by_user.json()["error"].startswith("user_id:")


async def test_withheld_personalization_consent_is_honoured_with_a_key(secure):
    visitor, vid, user = await customer(secure, traits={"first_name": "Ada"})
    async with secure.client(headers=auth()) as shop:
        before = (await shop.post("/v1/decide", json={"visitor_id": vid, "slots": ["hero"], "context": RAIN})).json()
        assert before["decisions"]["hero"]["source"] == "rule"
        await send(visitor, [{"type": "consent", "ts": T0 + 5, "props": {"consent": {"personalization": False}}}])
        await visitor.aclose()
        await profile_when(secure, vid, lambda p: p["consent"].get("personalization") is False, "the consent")
        for body in ({"visitor_id": vid}, {"user_id": user}, {"visitor_id": vid, "user_id": user}):
            answer = await shop.post("/v1/decide", json={**body, "slots": ["hero", "promo"], "context": RAIN})
            assert answer.status_code == 200, answer.text
            for decision in answer.json()["decisions"].values():
                assert decision["source"] == "default" and "model" not in decision and "rule_id" not in decision
                assert decision["reason"] == "no personalization consent: default content"
            assert "Ada" not in answer.json()["decisions"]["hero"]["content"]
        listed = await shop.get("/v1/recommendations/for-you", params={"visitor_id": vid})
    assert listed.json()["source"] == "popularity"
