"""The one JSON response class of the API: total over what a profile may hold.

Starlette's refuses NaN and infinities (they are not JSON), and a read that cannot be
rendered would answer 500 every time. Stored data is rendered as it is; only if it
holds a non-finite number is it rendered again with those numbers as null.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse as _StarletteJSON


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class JSONResponse(_StarletteJSON):
    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except ValueError:
            return super().render(_finite(content))
