"""The preference document a visitor may set (pure): errors name the field."""

from __future__ import annotations

from engine.errors import InvalidInput

PREFERENCES_MAX_BYTES = 16 * 1024
TOPIC_LIST_MAX = 50


def check_preferences(body: object) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object of preferences")
    out = {}
    for key, value in body.items():
        if key in ("show", "hide"):
            if (
                not isinstance(value, list)
                or len(value) > TOPIC_LIST_MAX
                or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in value)
            ):
                raise InvalidInput(f"{key}: expected a list of up to {TOPIC_LIST_MAX} topic names")
        elif key == "language":
            if not isinstance(value, str) or not 1 < len(value) <= 16:
                raise InvalidInput("language: expected a language tag such as 'nb' or 'en-GB'")
        elif key == "do_not_personalize":
            if not isinstance(value, bool):
                raise InvalidInput("do_not_personalize: expected true or false")
        elif not isinstance(key, str) or len(key) > 64 or not isinstance(value, (str, int, float, bool, type(None))):
            raise InvalidInput(f"{str(key)[:64]}: custom preferences take a short name and a plain value")
        out[key] = value
    return out
