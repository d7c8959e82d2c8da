"""Random secrets and their stored hashes (device tokens, enrolment codes)."""

import hashlib
import secrets


def new_token() -> str:
    """A URL-safe random token of 32 bytes (43 characters)."""
    return secrets.token_urlsafe(32)


def new_enrolment_code() -> str:
    """A code a person can type: 4 groups of 4 unambiguous characters, about 80 bits."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def hash_secret(value: str) -> str:
    """SHA-256 hex digest. Tokens are high-entropy, so a fast unsalted hash is enough to look them up."""
    return hashlib.sha256(value.strip().encode()).hexdigest()
