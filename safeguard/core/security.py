"""Login throttling support: which address a login attempt came from.

django-axes locks out a username, or an address, after repeated failed logins. Behind reverse
proxies every request arrives from the proxy, so counting REMOTE_ADDR would lock the whole school
out after a few typos by anyone. SAFEGUARD_TRUSTED_PROXIES says how many proxies stand in front
of Django (1 for the bundled nginx, 2 with an HTTPS proxy before it); the client is then the
address the outermost trusted proxy saw, read from the right of X-Forwarded-For, so a value a
client forges at the left of the header is ignored.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def login_client_ip(request: HttpRequest) -> str:
    """The client address of `request`, trusting exactly SAFEGUARD_TRUSTED_PROXIES proxies."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = int(getattr(settings, "SAFEGUARD_TRUSTED_PROXIES", 0) or 0)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        # Fewer hops than configured: the leftmost is still the furthest address we were told of.
        return forwarded[0] if forwarded else remote
    return forwarded[-proxies]


def login_lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The page shown instead of the login form while a username or address is locked out (429)."""
    cooloff = settings.AXES_COOLOFF_TIME
    minutes = max(1, int(cooloff.total_seconds() // 60)) if cooloff else None
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
