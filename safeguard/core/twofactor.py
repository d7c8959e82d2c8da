"""Two-factor authentication for staff: a TOTP authenticator app (django-otp) after the password.

Who must use it is SAFEGUARD_2FA_REQUIRED: "off", "privileged" (superusers, staff who may use
the admin site, and Confide viewers: the accounts that can read the most sensitive records) or
"everyone". Whatever the setting, a staff member who has set up an authenticator is asked for a
code at every login: turning it on for oneself is always allowed.

The flow: the password login (Django's, or the admin's) logs the user in as usual; then
TwoFactorMiddleware (safeguard.core.middleware) sends an unverified user who has a confirmed
device to the verify page, and one who must use 2FA but has none to the set-up page, before any
other page answers. The set-up page shows the secret as a QR code rendered here as inline SVG
(segno; nothing is fetched from another site) and confirms the device only once a code from it
is right. Codes are checked by django-otp's TOTPDevice, which refuses a code used before and slows
down repeated wrong codes (OTP_TOTP_THROTTLE_FACTOR). An admin resets a lost device by deleting
it in the admin ("TOTP devices"); both set-up and removal are audited.
"""

from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from safeguard.core import access
from safeguard.core.api import error_body

MODES = ("off", "privileged", "everyone")
SETUP_URL = "/accounts/2fa/setup/"
VERIFY_URL = "/accounts/2fa/verify/"
DEVICE_NAME = "Authenticator app"

# Paths an unverified user may still reach: the 2FA pages themselves, logging in and out, the
# password-reset flow (used while logged out), static files, and the agent API (device tokens,
# never a staff session).
EXEMPT_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/password_reset/",
    "/accounts/reset/",
    "/admin/login/",
    "/admin/logout/",
    "/static/",
    "/api/v1/agent/",
)


def two_factor_mode() -> str:
    mode = getattr(settings, "SAFEGUARD_2FA_REQUIRED", "off")
    if mode not in MODES:
        raise ImproperlyConfigured(f"SAFEGUARD_2FA_REQUIRED must be one of {', '.join(MODES)}, not {mode!r}.")
    return mode


def two_factor_required(user) -> bool:
    """Whether the setting obliges `user` to use a second factor."""
    mode = two_factor_mode()
    if mode == "everyone":
        return True
    if mode == "privileged":
        return bool(user.is_superuser or user.is_staff or access.has_right(user, "confide"))
    return False


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


# Whether the logged-in user has a confirmed device, noted in the session at login, so the
# middleware costs no query per page. A device set up later is set up in this session (which is
# then verified); one an admin deletes is noticed by the verify page.
SESSION_HAS_DEVICE = "safeguard_2fa_has_device"


def note_device_at_login(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver (connected in CoreConfig.ready)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_HAS_DEVICE] = confirmed_device(user) is not None


def _has_device(request: HttpRequest) -> bool:
    noted = request.session.get(SESSION_HAS_DEVICE)
    if noted is None:  # a session from before this was noted
        noted = request.session[SESSION_HAS_DEVICE] = confirmed_device(request.user) is not None
    return noted


def pending_redirect(request: HttpRequest) -> HttpResponse | None:
    """The response that stops an unverified user short of `request.path`, or None to let it through."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(EXEMPT_PREFIXES):
        return None
    if user.is_verified():
        return None
    if _has_device(request):
        target = VERIFY_URL
    elif two_factor_required(user):
        target = SETUP_URL
    else:
        return None
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("Two-factor verification is required.", {"otp": ["verify at " + target]}), status=403
        )
    url = f"{target}?{urlencode({'next': request.get_full_path()})}"
    if request.headers.get("HX-Request"):
        # An htmx fragment request would swap the verify page into a panel: send the whole page there.
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return HttpResponseRedirect(url)


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// address as an inline SVG QR code (no style attributes: CSP)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, dark="#000", light="#fff", title="QR code for your authenticator app"
    )


def base32_key(device: TOTPDevice) -> str:
    """The secret in the form authenticator apps accept when typed, in groups of four."""
    from base64 import b32encode

    key = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def _audit(request: HttpRequest, action: str, summary: str) -> None:
    from safeguard.logs.services import audit_record

    audit_record(actor=request.user, action=action, target_type="user", target_id=str(request.user.pk), summary=summary)


class TokenForm(forms.Form):
    otp_token = forms.RegexField(
        label="Code from your authenticator app",
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "Type the 6 digits your app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )

    def token(self) -> str:
        return self.cleaned_data["otp_token"].strip()


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return settings.LOGIN_REDIRECT_URL


@login_required
@require_http_methods(["GET", "POST"])
def setup_view(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: show its secret as a QR code, confirm it with one code."""
    if confirmed_device(request.user) is not None:
        # Already set up: a lost phone is reset by an admin, never by whoever holds the password.
        return redirect(f"{VERIFY_URL}?{urlencode({'next': _next_url(request)})}")
    with transaction.atomic():
        device = TOTPDevice.objects.filter(user=request.user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=request.user, name=DEVICE_NAME, confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.token()):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            _audit(request, "two_factor.enabled", "Set up an authenticator app for two-factor login")
            return redirect(_next_url(request))
        form.add_error("otp_token", "That code is not right. Check the time on your phone and try the newest code.")
    context = {
        "form": form,
        "qr_svg": qr_svg(device),
        "key": base32_key(device),
        "next": _next_url(request),
        "required": two_factor_required(request.user),
    }
    return render(request, "registration/two_factor_setup.html", context, status=400 if form.is_bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def verify_view(request: HttpRequest) -> HttpResponse:
    """Ask for a code from the staff member's authenticator app after the password."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    if confirmed_device(request.user) is None:
        # Its device was deleted (an admin's reset) since login: set up again, or go on if not required.
        request.session[SESSION_HAS_DEVICE] = False
        if two_factor_required(request.user):
            return redirect(f"{SETUP_URL}?{urlencode({'next': _next_url(request)})}")
        return redirect(_next_url(request))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(request.user, form.token())
        if device is not None:
            otp_login(request, device)
            return redirect(_next_url(request))
        form.add_error("otp_token", "That code is not right, or was used already. Wait for the next one.")
    status = 400 if form.is_bound else 200
    return render(
        request, "registration/two_factor_verify.html", {"form": form, "next": _next_url(request)}, status=status
    )
