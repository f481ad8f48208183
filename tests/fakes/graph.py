"""A local Microsoft identity platform + Microsoft Graph (mail subset) over HTTPS on 127.0.0.1.

What the Graph connector uses and nothing more: the tenant's OpenID configuration and the v2.0 token
endpoint (client-credentials grant with a client secret or a certificate assertion), listing messages by
`internetMessageId`, getting a mail folder by well-known name or id, `move`, `permanentDelete` and JSON
`$batch`. Answers and refusals follow the published documentation: Graph errors as
`{"error": {"code", "message"}}`, OAuth errors as `{"error", "error_description", "error_codes"}`.
Tokens are JWTs the fake signs (HS256) and checks, carrying the `roles` the app was registered with.

Plain methods let tests and the bench set the scene: `add_app`, `add_mailbox`, `put`, `where`,
`throttle`, `expire_tokens`, and the counters `http_requests`, `api_calls`, `token_requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.fakes.tls import TestPki

WELL_KNOWN = {
    "inbox": "Inbox",
    "junkemail": "Junk Email",
    "deleteditems": "Deleted Items",
    "recoverableitemsdeletions": "Deletions",
}
# folders listed by GET /users/{u}/messages: the mailbox's folder tree, not the Recoverable Items dumpster
OUTSIDE_MESSAGE_LIST = {"recoverableitemsdeletions"}
MAIL_ROLE = "Mail.ReadWrite"
MAX_BATCH = 20
TOKEN_LIFETIME = 3599
EXPIRED = "Lifetime validation failed, the token is expired."
FILTER = re.compile(r"^internetMessageId eq '((?:[^']|'')*)'$")


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class App:
    client_id: str
    secret: str | None
    thumbprint: str | None  # SHA-1 hex, as registered in Entra
    public_key: Any
    roles: list[str]


@dataclass
class MailFolder:
    id: str
    display_name: str
    well_known: str | None


@dataclass
class Mailbox:
    address: str
    folders: dict[str, MailFolder] = field(default_factory=dict)  # by id
    messages: dict[str, tuple[str, str]] = field(default_factory=dict)  # graph id → (Message-ID, folder id)

    def folder(self, name_or_id: str) -> MailFolder | None:
        for folder in self.folders.values():
            if folder.id == name_or_id or folder.well_known == name_or_id.lower():
                return folder
        return None


def _new_id() -> str:
    return "AAMk" + secrets.token_urlsafe(30)


class FakeGraph:
    """Start with `with FakeGraph(pki) as graph:`; `graph.url` is both login_url and graph_url."""

    def __init__(self, pki: TestPki, tenant_id: str = "contoso-tenant") -> None:
        self.pki = pki
        self.tenant_id = tenant_id
        self.apps: dict[str, App] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.http_requests = 0  # HTTPS requests to Graph (a $batch is one)
        self.api_calls = 0  # Graph operations (each request inside a $batch is one)
        self.token_requests = 0
        self.batch_sizes: list[int] = []
        self._throttle_left = 0
        self._throttle_answer = (429, 1.0)
        self._expired_jtis: set[str] = set()
        self._issued_jtis: set[str] = set()
        self._key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- scene setting -----------------------------------------------------------------------------------

    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        roles: tuple[str, ...] = (MAIL_ROLE,),
    ) -> None:
        """Register an application (a client secret, or a certificate whose key signs assertions)."""
        thumbprint = public_key = None
        if certificate_pem is not None:
            cert = x509.load_pem_x509_certificate(certificate_pem)
            thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
            public_key = cert.public_key()
        with self._lock:
            self.apps[client_id] = App(client_id, secret, thumbprint, public_key, list(roles))

    def set_roles(self, client_id: str, roles: tuple[str, ...]) -> None:
        """Roles that tokens issued from now on carry (as granted by admin consent)."""
        with self._lock:
            self.apps[client_id].roles = list(roles)

    def add_mailbox(self, address: str, folders: tuple[str, ...] = ()) -> None:
        """A user mailbox with the well-known folders and any extra top-level folders named."""
        box = Mailbox(address)
        for well_known, display in WELL_KNOWN.items():
            fid = _new_id()
            box.folders[fid] = MailFolder(fid, display, well_known)
        for display in folders:
            fid = _new_id()
            box.folders[fid] = MailFolder(fid, display, None)
        with self._lock:
            self.mailboxes[address.lower()] = box

    def put(self, address: str, message_id: str, folder: str = "inbox") -> str:
        """Deliver a copy of `message_id` into `folder` (well-known name or display name); its Graph id."""
        with self._lock:
            box = self.mailboxes[address.lower()]
            target = box.folder(folder) or next(f for f in box.folders.values() if f.display_name == folder)
            gid = _new_id()
            box.messages[gid] = (message_id, target.id)
            return gid

    def where(self, address: str, message_id: str) -> list[str]:
        """Where each copy of `message_id` is now: well-known names, or display names of other folders."""
        with self._lock:
            box = self.mailboxes[address.lower()]
            found = []
            for mid, fid in box.messages.values():
                if mid == message_id:
                    folder = box.folders[fid]
                    found.append(folder.well_known or folder.display_name)
            return sorted(found)

    def throttle(self, n: int, retry_after: float = 1.0, status: int = 429) -> None:
        """The next `n` Graph operations answer `status` (429 or 503) with this Retry-After."""
        with self._lock:
            self._throttle_left = n
            self._throttle_answer = (status, retry_after)

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused as expired from now on."""
        with self._lock:
            self._expired_jtis |= self._issued_jtis

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGraph:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        context = self.pki.server_context()
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket, Any]:
                sock, address = super().get_request()
                # the handshake happens in the handler's thread, never blocking the accept loop
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

        class Handler(_Handler):
            graph = fake

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-graph", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- identity platform ----------------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        if tenant != self.tenant_id:
            raise GraphError(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "EU",
        }

    def issue_token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests += 1
        if tenant != self.tenant_id:
            return _oauth_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return _oauth_error(
                400,
                "unauthorized_client",
                700016,
                f"Application '{form.get('client_id')}' was not found in the directory.",
            )
        refusal = self._check_client(app, form, tenant)
        if refusal is not None:
            return refusal
        if form.get("scope") != f"{self.url}/.default":
            return _oauth_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
        now = int(time.time())
        jti = secrets.token_hex(8)
        claims = {"aud": self.url, "iss": f"{self.url}/{tenant}/", "tid": tenant, "appid": app.client_id}
        claims |= {"roles": list(app.roles), "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, "jti": jti}
        with self._lock:
            self._issued_jtis.add(jti)
        token = jwt.encode(claims, self._key, algorithm="HS256")
        return 200, {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": token,
        }

    def _check_client(self, app: App, form: dict[str, str], tenant: str) -> tuple[int, dict[str, Any]] | None:
        if "client_assertion" in form:
            if app.public_key is None:
                return _oauth_error(401, "invalid_client", 700027, "Client assertion contains an invalid signature.")
            try:
                header = jwt.get_unverified_header(form["client_assertion"])
                claims = jwt.decode(
                    form["client_assertion"],
                    app.public_key,
                    algorithms=["RS256", "PS256"],
                    audience=f"{self.url}/{tenant}/oauth2/v2.0/token",
                )
            except jwt.PyJWTError:
                return _oauth_error(401, "invalid_client", 700027, "Client assertion contains an invalid signature.")
            x5t = _b64_thumbprint(app.thumbprint or "")
            issued_by = {claims.get("iss"), claims.get("sub")}
            if str(header.get("x5t", "")).rstrip("=") != x5t or issued_by != {app.client_id}:
                return _oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
            return None
        if app.secret is None or not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            return _oauth_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        return None

    # -- Graph ------------------------------------------------------------------------------------------------

    def authorize(self, authorization: str | None) -> None:
        """Bearer token checks in Graph's order: present and well-formed, unexpired, carrying the mail role."""
        if not authorization or not authorization.startswith("Bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = jwt.decode(authorization[7:], self._key, algorithms=["HS256"], audience=self.url)
        except jwt.ExpiredSignatureError as exc:
            raise GraphError(401, "InvalidAuthenticationToken", EXPIRED) from exc
        except jwt.PyJWTError as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.") from exc
        with self._lock:
            if claims.get("jti") in self._expired_jtis:
                raise GraphError(401, "InvalidAuthenticationToken", EXPIRED)
        if MAIL_ROLE not in claims.get("roles", []):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def call(self, method: str, target: str, body: Any) -> tuple[int, Any]:
        """One Graph operation (`target` is the path after /v1.0, with its query); throttling first."""
        with self._lock:
            self.api_calls += 1
            if self._throttle_left > 0:
                self._throttle_left -= 1
                status, after = self._throttle_answer
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                raise GraphError(
                    status,
                    code,
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": f"{after:g}"},
                )
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if len(segments) < 3 or segments[0].lower() != "users":
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[0]}'.")
        with self._lock:
            box = self.mailboxes.get(segments[1].lower())
            if box is None:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{segments[1]}' is invalid.")
            return self._route(box, method, segments[2:], query, body)

    def _route(self, box: Mailbox, method: str, rest: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and rest == ["messages"]:
            return 200, self._list(box, None, query)
        if method == "GET" and len(rest) == 2 and rest[0] == "mailFolders":
            return 200, _folder_json(self._folder(box, rest[1]))
        if method == "GET" and len(rest) == 3 and rest[0] == "mailFolders" and rest[2] == "messages":
            return 200, self._list(box, self._folder(box, rest[1]), query)
        if method == "POST" and len(rest) == 3 and rest[0] == "messages" and rest[2] == "move":
            return 201, self._move(box, rest[1], body)
        if method == "POST" and len(rest) == 3 and rest[0] == "messages" and rest[2] == "permanentDelete":
            self._message(box, rest[1])
            del box.messages[rest[1]]
            return 204, None
        raise GraphError(400, "BadRequest", "Unsupported request.")

    def _folder(self, box: Mailbox, name_or_id: str) -> MailFolder:
        folder = box.folder(name_or_id)
        if folder is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return folder

    def _message(self, box: Mailbox, gid: str) -> tuple[str, str]:
        if gid not in box.messages:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return box.messages[gid]

    def _list(self, box: Mailbox, folder: MailFolder | None, query: dict[str, str]) -> dict[str, Any]:
        match = FILTER.match(query.get("$filter", "").strip())
        if match is None:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        wanted = match.group(1).replace("''", "'")
        value = []
        for gid, (mid, fid) in box.messages.items():
            here = box.folders[fid]
            in_scope = fid == folder.id if folder else here.well_known not in OUTSIDE_MESSAGE_LIST
            if mid == wanted and in_scope:
                value.append({"id": gid, "parentFolderId": fid, "internetMessageId": mid})
        return {"@odata.context": f"{self.url}/v1.0/$metadata#users('{box.address}')/messages", "value": value}

    def _move(self, box: Mailbox, gid: str, body: Any) -> dict[str, Any]:
        mid, _ = self._message(box, gid)
        destination = body.get("destinationId") if isinstance(body, dict) else None
        if not isinstance(destination, str):
            raise GraphError(400, "ErrorInvalidRequest", "The destinationId parameter is missing.")
        target = self._folder(box, destination)
        del box.messages[gid]
        new = _new_id()
        box.messages[new] = (mid, target.id)
        return {"id": new, "parentFolderId": target.id, "internetMessageId": mid}

    def batch(self, body: Any) -> tuple[int, Any]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > MAX_BATCH:
            raise GraphError(400, "BadRequest", f"Number of batch request steps exceeds the maximum of {MAX_BATCH}.")
        with self._lock:
            self.batch_sizes.append(len(requests))
        responses = []
        for request in requests:
            rid = str(request.get("id"))
            try:
                status, answer = self.call(
                    str(request.get("method", "GET")).upper(), request["url"], request.get("body")
                )
                responses.append({"id": rid, "status": status, "headers": {}, "body": answer})
            except GraphError as err:
                responses.append({"id": rid, "status": err.status, "headers": err.headers, "body": err.body()})
        return 200, {"responses": responses}


def _b64_thumbprint(hex_thumbprint: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_thumbprint)).decode().rstrip("=")


def _oauth_error(status: int, error: str, code: int, text: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {secrets.token_hex(8)}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": secrets.token_hex(8),
        "correlation_id": secrets.token_hex(8),
    }


def _folder_json(folder: MailFolder) -> dict[str, Any]:
    return {"id": folder.id, "displayName": folder.display_name, "parentFolderId": "root", "totalItemCount": 0}


class _Handler(BaseHTTPRequestHandler):
    graph: FakeGraph
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        try:
            status, body, headers = self._answer(method, path, raw)
        except GraphError as err:
            status, body, headers = err.status, err.body(), err.headers
        self._send(status, body, headers)

    def _answer(self, method: str, path: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        graph = self.graph
        tenant = path.strip("/").split("/")[0]
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return 200, graph.openid_configuration(tenant), {}
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            status, body = graph.issue_token(tenant, form)
            return status, body, {}
        if not path.startswith("/v1.0/"):
            raise GraphError(404, "BadRequest", "Invalid version.")
        with graph._lock:
            graph.http_requests += 1
        graph.authorize(self.headers.get("Authorization"))
        body = _json(raw)
        if method == "POST" and path == "/v1.0/$batch":
            status, answer = graph.batch(body)
        else:
            status, answer = graph.call(method, self.path[len("/v1.0") :], body)
        return status, answer, {}

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
