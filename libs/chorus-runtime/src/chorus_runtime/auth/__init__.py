"""Authentication and authorisation shared by every service."""

from chorus_runtime.auth.deps import CurrentPrincipal, current_principal, require_permission
from chorus_runtime.auth.jwks import TokenVerifier, http_jwks_source
from chorus_runtime.auth.permissions import ROLE_PERMISSIONS, permissions_for
from chorus_runtime.auth.tokens import JwtSigner, Principal, SigningKey, TokenError, verify_token

__all__ = [
    "ROLE_PERMISSIONS",
    "CurrentPrincipal",
    "JwtSigner",
    "Principal",
    "SigningKey",
    "TokenError",
    "TokenVerifier",
    "current_principal",
    "http_jwks_source",
    "permissions_for",
    "require_permission",
    "verify_token",
]
