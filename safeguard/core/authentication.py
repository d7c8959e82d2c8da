"""`Authorization: Device <token>` authentication for the agent API."""

from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# Importing the schema module registers the OpenAPI description of this scheme (DeviceTokenScheme).
from safeguard.core import schema as _schema  # noqa: F401
from safeguard.core.throttling import DeviceTokenRateThrottle
from safeguard.core.tokens import hash_secret


@dataclass(frozen=True)
class DevicePrincipal:
    """Stands in for request.user on agent calls: the device, never a staff account."""

    device: object  # safeguard.groups.models.Device

    is_authenticated = True
    is_staff = False
    is_superuser = False

    def __str__(self) -> str:
        return f"device {self.device}"


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """Looks the token up by its SHA-256 hash; revoked tokens and tokens of revoked devices fail.

    A missing header returns None so that IsDevice answers 401 "not authenticated"; any other
    scheme, an empty token or an unknown one raises, also 401. Both carry `WWW-Authenticate: Device`
    (from authenticate_header), which DRF needs to answer 401 rather than 403.
    """

    keyword = "Device"

    def authenticate(self, request: Request) -> tuple[DevicePrincipal, object] | None:
        from safeguard.groups.models import DeviceToken

        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        # Auth schemes are case-insensitive (RFC 9110 section 11.1); the token never contains a space.
        if scheme.lower() != self.keyword.lower() or not token or " " in token:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Device <token>'.")
        record = (
            DeviceToken.objects.select_related("device")
            .filter(token_hash=hash_secret(token), revoked_at__isnull=True, device__revoked_at__isnull=True)
            .first()
        )
        if record is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked device token.")
        now = timezone.now()
        # Write at most once a minute per token: this runs on every agent call.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        record_use = getattr(view, "record_token_use", True)
        if record_use and (record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60):
            DeviceToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return DevicePrincipal(device=record.device), record

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsDevice(BasePermission):
    """Only an enrolled, unrevoked device may call."""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, DevicePrincipal)


class DeviceAPIMixin:
    """Base settings for every agent endpoint except enrolment."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    # Whether a call stamps the token's last_used_at. Confide turns it off: stamping the moment an
    # anonymous report arrives would tie it to its device by time (heartbeats show the device alive).
    record_token_use = True
    throttle_classes = [DeviceTokenRateThrottle]  # per-token rate limit (safeguard.core.throttling)

    def device(self, request: Request):
        return request.user.device
