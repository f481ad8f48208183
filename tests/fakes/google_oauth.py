"""Google's OAuth 2.0 token endpoint for service accounts (JWT bearer grant with domain-wide delegation),
as far as the Gmail fake needs it, and the service-account key files tests hand to the product.

What it checks, as Google documents for server-to-server applications: the assertion's RS256 signature
against the account's public key, `aud` (Google's token URL), `iat`/`exp` (at most an hour, not expired),
`scope` (present, and granted to the client by the domain's administrator), and `sub` (a user of one of
the fake's domains). Its answers use Google's error codes and descriptions.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth puts in `aud`
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FULL_SCOPE = "https://mail.google.com/"
MODIFY_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
TOKEN_LIFETIME = 3599

UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, "
    "or client not authorized for any of the scopes requested."
)
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account the test made: its private key, and the key file Google would hand out."""

    client_email: str
    client_id: str
    key_id: str
    private_key: rsa.RSAPrivateKey

    def key_file(self, token_uri: str = GOOGLE_TOKEN_AUDIENCE) -> str:
        """The JSON key file (the connector's secret), with `token_uri` pointing where the test wants."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "mailwarden-test",
                "private_key_id": self.key_id,
                "private_key": pem,
                "client_email": self.client_email,
                "client_id": self.client_id,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": token_uri,
            }
        )

    def pem(self) -> str:
        return json.loads(self.key_file())["private_key"]  # type: ignore[no-any-return]


def make_service_account(name: str = "clawback") -> ServiceAccountKey:
    """A fresh RSA key for a service account of the test project."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ServiceAccountKey(
        client_email=f"{name}@mailwarden-test.iam.gserviceaccount.com",
        client_id=str(secrets.randbelow(10**20)),
        key_id=secrets.token_hex(20),
        private_key=key,
    )


def sign_assertion(account: ServiceAccountKey, claims: dict[str, object]) -> str:
    """A JWT signed with the account's key, for tests of the token endpoint's own refusals."""
    header = {"alg": "RS256", "typ": "JWT", "kid": account.key_id}
    parts = [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())]
    signature = account.private_key.sign(".".join(parts).encode(), padding.PKCS1v15(), hashes.SHA256())
    return ".".join([*parts, _b64(signature)])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class AccessToken:
    subject: str | None
    scopes: frozenset[str]
    expires: float


class TokenRefused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class TokenIssuer:
    """The token endpoint's state: trusted service accounts and their delegated scopes, issued tokens."""

    accounts: dict[str, tuple[ServiceAccountKey, frozenset[str]]] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)

    def trust(self, account: ServiceAccountKey, scopes: frozenset[str]) -> None:
        self.accounts[account.client_email] = (account, scopes)

    def issue(
        self, form: dict[str, str], is_user: Callable[[str], bool], in_domain: Callable[[str], bool]
    ) -> dict[str, object]:
        """The token response for a form-encoded grant, or TokenRefused. `is_user(address)` and
        `in_domain(address)` are the fake directory's answers."""
        if form.get("grant_type") != JWT_BEARER:
            raise TokenRefused(400, "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        claims, granted = self._verified(form.get("assertion", ""))
        now = time.time()
        iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
        if exp <= now or iat > now + 60 or exp - iat > 3600:
            raise TokenRefused(400, "invalid_grant", SHORT_LIVED)
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise TokenRefused(400, "invalid_scope", "Empty or missing scope not allowed.")
        subject = str(claims["sub"]) if claims.get("sub") else None
        if not scopes <= granted or (subject is not None and not in_domain(subject)):
            raise TokenRefused(401, "unauthorized_client", UNAUTHORIZED_CLIENT)
        if subject is not None and not is_user(subject):
            raise TokenRefused(400, "invalid_grant", "Invalid email or User ID")
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = AccessToken(subject, scopes, now + TOKEN_LIFETIME)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}

    def _verified(self, assertion: str) -> tuple[dict[str, object], frozenset[str]]:
        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
        except ValueError:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT: malformed assertion.") from None
        entry = self.accounts.get(str(claims.get("iss")))
        if entry is None:
            raise TokenRefused(400, "invalid_grant", "Invalid grant: account not found")
        account, granted = entry
        if header.get("alg") != "RS256":
            raise TokenRefused(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            account.private_key.public_key().verify(
                _unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError):
            raise TokenRefused(400, "invalid_grant", "Invalid JWT Signature.") from None
        return claims, granted

    def lookup(self, token: str) -> AccessToken | None:
        found = self.tokens.get(token)
        return found if found is not None and found.expires > time.time() else None

    def expire_all(self) -> None:
        for token in self.tokens.values():
            token.expires = 0.0
