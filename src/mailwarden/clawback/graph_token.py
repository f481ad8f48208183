"""App-only access tokens for Microsoft Graph: msal's client-credentials grant, cached and renewed by msal.

msal is synchronous and its application object fetches the tenant's OpenID configuration when it is
built, so the object is built on the first token request (never in `connect`) and every call runs in a
worker thread. msal talks through `MsalHttp`, an httpx client with the connector's TLS context, so a
private `ca_file` is trusted in addition to the system's store.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal  # type: ignore[import-untyped]
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS  # type: ignore[import-untyped]

from mailwarden.clawback.connector import ConnectorError

# OAuth errors that will not go away by asking again (RFC 6749 §5.2 and Entra's invalid_tenant)
FINAL_OAUTH_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "invalid_scope", "invalid_grant", "invalid_tenant"}
)
TOKEN_TIMEOUT_SECONDS = 30.0


class MsalHttp:
    """The http_client interface msal documents (`post`, `get`, `close`), over a synchronous httpx client."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._client = httpx.Client(verify=context, timeout=TOKEN_TIMEOUT_SECONDS)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> httpx.Response:
        if isinstance(data, dict):  # msal hands the client assertion over as bytes, as requests accepts
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def close(self) -> None:
        self._client.close()


class TokenSource:
    """Hands out a valid access token for one app registration; `forget` drops one Graph refused as expired."""

    def __init__(
        self,
        *,
        login_url: str,
        tenant_id: str,
        client_id: str,
        credential: str | dict[str, str],
        scope: str,
        context: ssl.SSLContext,
    ) -> None:
        self._authority = f"{login_url.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._credential = credential
        self._scopes = [scope]
        self._context = context
        self._app: msal.ConfidentialClientApplication | None = None
        self._http: MsalHttp | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenSource(authority={self._authority!r}, client_id={self._client_id!r})"

    async def token(self) -> str:
        return await asyncio.to_thread(self._acquire)

    async def forget(self, token: str) -> None:
        await asyncio.to_thread(self._forget, token)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._http = MsalHttp(self._context)
            host = urlsplit(self._authority).hostname or ""
            # Instance discovery asks login.microsoftonline.com whether a host is a Microsoft cloud: kept for
            # the real hosts (where msal knows them anyway), off for any other (a sovereign proxy, a test fake).
            discovery = None if host in WELL_KNOWN_AUTHORITY_HOSTS else False
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._credential,
                authority=self._authority,
                http_client=self._http,
                instance_discovery=discovery,
            )
        return self._app

    def _acquire(self) -> str:
        try:
            with self._lock:
                result = self._application().acquire_token_for_client(scopes=self._scopes)
        except httpx.TransportError as exc:
            raise ConnectorError(f"token endpoint unreachable: {type(exc).__name__}", retryable=True) from exc
        except msal.exceptions.MsalServiceError as exc:  # msal raises it for a 5xx answer
            raise ConnectorError(f"token endpoint failed: {exc}", retryable=True) from exc
        except ValueError as exc:  # a 4xx from the OpenID configuration: unknown tenant, wrong login_url
            # msal's own message is generic advice; the answer it wraps says what Entra refused
            cause = exc.__context__ if isinstance(exc.__context__, ValueError) else exc
            raise ConnectorError(f"tenant discovery refused: {str(cause)[:400]}", retryable=False) from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str):
            return token
        error = str(result.get("error", "no access token")) if isinstance(result, dict) else "no access token"
        description = str(result.get("error_description", "")).splitlines()[0] if isinstance(result, dict) else ""
        raise ConnectorError(
            f"token refused: {error}: {description}".rstrip(": "), retryable=error not in FINAL_OAUTH_ERRORS
        )

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if entry.get("secret") == token:
                    cache.remove_at(entry)
