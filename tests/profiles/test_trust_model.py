"""What trust changes in the profile fold (pure): verified identities, first user's traits, trusted orders."""

from functools import partial

import events as builders

from engine.profiles.model import fold, new_profile
from engine.profiles.orders import mark_claims
from engine.settings import UNTRUSTED_ORDERS
from engine.profiles.orders import POLICIES

T0 = 1_795_400_000_000


# Everything here happens to one visitor, "v"; an order's event id tells a shop's copy from a browser's.
identify = partial(builders.identify, "v", event_id="i-{uid}-{ts}")
purchase = partial(builders.purchase, "v", trusted=False, event_id="p-{order_id}-{ts}-{trusted}")


def test_an_unverified_identify_is_a_claim_without_traits():
    p = fold(new_profile("v"), [identify("ada", T0, verified=False, traits={"first_name": "Ada"})])
    assert p["user_id"] is None and p["kind"] == "anonymous" and p["claimed_user_id"] == "ada" and p["traits"] == {}
    p = fold(p, [identify("ada", T0 + 1, traits={"first_name": "Ada"})])
    assert p["user_id"] == "ada" and p["traits"] == {"first_name": "Ada"}


def test_a_second_users_login_leaves_the_first_users_traits():
    p = fold(
        new_profile("v"),
        [
            identify("ada", T0, traits={"first_name": "Ada", "email": "ada@example.com"}),
            identify("eve", T0 + 1, traits={"first_name": "Eve", "email": "eve@example.com", "phone": "555"}),
            identify("eve", T0 + 2, verified=False, traits={"first_name": "Eve"}),
        ],
    )
    assert p["user_id"] == "ada" and p["traits"] == {"first_name": "Ada", "email": "ada@example.com"}
    p = fold(p, [identify("ada", T0 + 3, traits={"first_name": "Ada L."})])
    assert p["traits"]["first_name"] == "Ada L."


def test_a_claimed_order_counts_nowhere_on_the_profile():
    p = fold(
        new_profile("v"),
        [
            purchase("o1", ["a"], T0, revenue=10.0, trusted=True),
            purchase("fake", ["a"], T0 + 1, revenue=9999.0, claim=True),
            purchase("fake", ["a"], T0 + 2, revenue=9999.0, claim=True),
        ],
    )
    c = p["commerce"]
    assert (c["orders"], c["revenue"], [o[2] for o in c["order_log"]]) == (1, 10.0, ["o1"])
    assert c["claims"] == [[T0 + 1, 9999.0, "fake"]]


def test_the_back_end_confirms_a_browsers_order_and_nothing_changes_a_confirmed_one():
    p = fold(
        new_profile("v"),
        [purchase("o1", ["a"], T0, revenue=5.0), purchase("o1", ["a"], T0 + 1, revenue=42.0, trusted=True)],
    )
    assert (p["commerce"]["orders"], p["commerce"]["revenue"]) == (1, 42.0)
    assert p["commerce"]["order_log"] == [[T0 + 1, 42.0, "o1", 1]]
    p = fold(p, [purchase("o1", ["a"], T0 + 2, revenue=1.0), purchase("o1", ["a"], T0 + 3, revenue=7.0, trusted=True)])
    assert (p["commerce"]["orders"], p["commerce"]["revenue"]) == (1, 42.0)


def test_the_policies_mark_browsers_purchases():
    def marks(policy, kinds):
        events = [{"type": "purchase", "trusted": trusted} for trusted in kinds] + [{"type": "page_view"}]
        seen = mark_claims(events, policy, False)
        return [e["claim"] for e in events[:-1]], seen, "claim" in events[-1]

    browser_then_shop = [False, True, False]
    assert marks("count", browser_then_shop) == ([False, False, False], True, False)
    assert marks("until-trusted", browser_then_shop) == ([False, False, True], True, False)
    assert marks("claim", browser_then_shop) == ([True, False, True], True, False)
    assert marks("until-trusted", [False, False]) == ([False, False], False, False)
    assert UNTRUSTED_ORDERS == POLICIES
