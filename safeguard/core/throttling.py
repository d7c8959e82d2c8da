"""Per-token rate limits on the agent API (DRF throttling).

Each device token gets SAFEGUARD_AGENT_RATE_LIMIT requests per period ("600/min" by default: an
agent sends a heartbeat, event batches, captures and thumbnails, far below that), counted in the
Django cache (Redis when REDIS_URL is set, shared by every web process; per process otherwise).
Past it the API answers 429 in the API's error shape with Retry-After, and the agent keeps its
outbox and backs off (agent/safeguard_agent/client.py). A stolen or runaway token cannot flood
the server, and one noisy device does not slow the others.

Keyed by the token (its stored hash), not the request's address: every pupil computer behind the
school's NAT shares one address.
"""

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class DeviceTokenRateThrottle(SimpleRateThrottle):
    scope = "agent_device"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if not getattr(view, "record_token_use", True):
            # Confide: counting its calls would note, under the token, the moment an anonymous
            # report arrived (for the period, in the cache). Anonymity wins over the limit there;
            # the body-size limit still applies.
            return None
        token = getattr(request, "auth", None)
        token_hash = getattr(token, "token_hash", None)
        if not token_hash:
            return None  # not a device call: authentication refuses it anyway
        return self.cache_format % {"scope": self.scope, "ident": token_hash}

    def get_rate(self) -> str | None:
        # Read the rate when asked, not once at import as DRF's class attribute does, so a changed
        # setting (a test's, or a reloaded configuration) is honoured.
        from rest_framework.settings import api_settings

        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
