"""A stand-in for the Gmail API and Google's token endpoint: a real HTTPS server on 127.0.0.1 that
implements the calls the clawback connector makes, with Google's status codes and error bodies.

Implemented: POST /token (JWT bearer grant, see google_oauth.py); under /gmail/v1/users/{userId}/:
GET messages (only `q=rfc822msgid:...`, `includeSpamTrash`, `maxResults`), GET messages/{id} (minimal),
POST messages/{id}/trash, /untrash, /modify, DELETE messages/{id}; POST /batch/gmail/v1 (multipart/mixed of
application/http parts, at most 100, answered in reverse order to show that Content-ID pairs them).

Refusals, as Google answers them: no, unknown or expired bearer token → 401 UNAUTHENTICATED (authError);
a token without a scope that allows the call (readonly may only list and read; gmail.modify may not delete)
→ 403 PERMISSION_DENIED insufficientPermissions; userId neither `me` nor the token's user → 403 "Delegation
denied"; a user whose Gmail is off → 400 FAILED_PRECONDITION failedPrecondition "Mail service not enabled";
a message the mailbox does not hold → 404 notFound; a label id it does not know → 400 invalidArgument.
The fake's query rule (its own decision; Gmail's grammar is not published): `q` must be one
`rfc822msgid:` term whose value is a bare word (no space, quote, parenthesis or brace) or one double-quoted
string; an unbalanced quote, an empty value or any other term → 400 INVALID_ARGUMENT invalidArgument
"Invalid query".
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.encoders import encode_noop
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.google_oauth import (
    FULL_SCOPE,
    MODIFY_SCOPE,
    READONLY_SCOPE,
    AccessToken,
    ServiceAccountKey,
    TokenIssuer,
    TokenRefused,
)
from tests.fakes.tls import TestPki

READ_SCOPES = frozenset({FULL_SCOPE, MODIFY_SCOPE, READONLY_SCOPE})
CHANGE_SCOPES = frozenset({FULL_SCOPE, MODIFY_SCOPE})
DELETE_SCOPES = frozenset({FULL_SCOPE})
ALL_SCOPES = READ_SCOPES
FOLDER_LABELS = {"inbox": {"INBOX"}, "junk": {"SPAM"}, "trash": {"TRASH"}, "other": {"Label_1"}}
KNOWN_LABELS = frozenset({"INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "Label_1"})
Reply = tuple[int, dict[str, str], Any]
WIRE = compat32.clone(linesep="\r\n", max_line_length=0)  # fast enough for a bench of 1,000 mailboxes


def google_error(code: int, status: str, reason: str, message: str) -> dict[str, Any]:
    """Google's JSON error body."""
    errors = [{"message": message, "domain": "global", "reason": reason}]
    return {"error": {"code": code, "message": message, "errors": errors, "status": status}}


@dataclass
class StoredMessage:
    id: str
    message_id: str
    labels: set[str]
    before_trash: set[str] = field(default_factory=set)


@dataclass
class Mailbox:
    address: str
    gmail_enabled: bool = True
    messages: dict[str, StoredMessage] = field(default_factory=dict)


def folder_of(labels: set[str]) -> str:
    for name, label in (("trash", "TRASH"), ("junk", "SPAM"), ("inbox", "INBOX")):
        if label in labels:
            return name
    return "other"


def parse_query(q: str) -> str | None:
    """The Message-ID an `rfc822msgid:` query asks for, or None when the fake refuses the query."""
    prefix = "rfc822msgid:"
    if not q.startswith(prefix):
        return None
    value = q[len(prefix) :]
    if value.startswith('"'):
        inner = value[1:-1] if len(value) >= 2 and value.endswith('"') else None
        return inner if inner and '"' not in inner else None
    if not value or any(c.isspace() or c in '"(){}' for c in value):
        return None
    return value


class FakeGmail:
    """The fake's state and its HTTP handling; start it with `start()` or `with FakeGmail(pki) as fake`."""

    def __init__(self, pki: TestPki) -> None:
        self._pki = pki
        self._lock = threading.Lock()
        self._ids = itertools.count(0x18C0000000000000)
        self.mailboxes: dict[str, Mailbox] = {}
        self.domains: set[str] = set()
        self.issuer = TokenIssuer()
        self.counts: Counter[str] = Counter()  # "token", "http" (API requests), "batch", "call" (API calls)
        self._throttle_left = 0
        self._throttle: tuple[int, float | None] = (429, None)
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # --- what tests and the bench call -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def trust(self, account: ServiceAccountKey, scopes: frozenset[str] = ALL_SCOPES) -> None:
        """Grant the service account domain-wide delegation of `scopes` (the Admin console's step)."""
        with self._lock:
            self.issuer.trust(account, frozenset(scopes))

    def add_mailbox(self, address: str, *, gmail_enabled: bool = True) -> None:
        with self._lock:
            self.mailboxes[address.lower()] = Mailbox(address.lower(), gmail_enabled)
            self.domains.add(address.lower().rpartition("@")[2])

    def add_domain(self, domain: str) -> None:
        with self._lock:
            self.domains.add(domain.lower())

    def put(self, mailbox: str, message_id: str, folder: str = "inbox") -> str:
        """Deliver a copy of the message (Message-ID with brackets) into `folder`; its Gmail id."""
        with self._lock:
            gid = f"{next(self._ids):x}"
            self.mailboxes[mailbox.lower()].messages[gid] = StoredMessage(gid, message_id, set(FOLDER_LABELS[folder]))
            return gid

    def where(self, mailbox: str, message_id: str) -> list[str]:
        """The folders ("inbox", "junk", "trash", "other") of every copy still in the mailbox."""
        with self._lock:
            messages = self.mailboxes[mailbox.lower()].messages.values()
            return sorted(folder_of(m.labels) for m in messages if m.message_id == message_id)

    def throttle(self, n: int, retry_after: float | None = 1.0, status: int = 429) -> None:
        """The next `n` API calls (a batch's parts each count) answer `status` (429 or 5xx)."""
        with self._lock:
            self._throttle_left, self._throttle = n, (status, retry_after)

    def expire_tokens(self) -> None:
        with self._lock:
            self.issuer.expire_all()

    # --- the server ---------------------------------------------------------------------------------
    def __enter__(self) -> FakeGmail:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.socket = self._pki.server_context().wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.fake = self  # type: ignore[attr-defined]
        self._server, self.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-gmail", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- HTTP handling --------------------------------------------------------------------------------
    def token(self, body: bytes) -> Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.counts["token"] += 1
            try:
                answer = self.issuer.issue(form, self._is_user, self._in_domain)
            except TokenRefused as exc:
                return exc.status, {}, exc.body()
        return 200, {}, answer

    def _is_user(self, address: str) -> bool:
        return address.lower() in self.mailboxes

    def _in_domain(self, address: str) -> bool:
        return address.lower().rpartition("@")[2] in self.domains

    def api(self, method: str, target: str, authorization: str, body: bytes) -> Reply:
        """One Gmail API call, direct or from a batch."""
        with self._lock:
            self.counts["call"] += 1
            if self._throttle_left > 0:
                self._throttle_left -= 1
                status, retry_after = self._throttle
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                if status == 429:
                    return (
                        status,
                        headers,
                        google_error(
                            429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Too many concurrent requests for user."
                        ),
                    )
                return status, headers, google_error(status, "UNAVAILABLE", "backendError", "Backend Error")
            token = self.issuer.lookup(authorization.removeprefix("Bearer ").strip())
            if token is None:
                message = "Request had invalid authentication credentials. Expected OAuth 2 access token."
                return (
                    401,
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                    google_error(401, "UNAUTHENTICATED", "authError", message),
                )
            return self._route(method, target, token, body)

    def _route(self, method: str, target: str, token: AccessToken, body: bytes) -> Reply:
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.split("/")]
        if segments[:4] != ["", "gmail", "v1", "users"] or len(segments) < 6 or segments[5] != "messages":
            return 404, {}, google_error(404, "NOT_FOUND", "notFound", "Not Found")
        user = token.subject if segments[4] == "me" else segments[4].lower()
        if user is None or user != token.subject:
            return (
                403,
                {},
                google_error(403, "PERMISSION_DENIED", "forbidden", f"Delegation denied for {token.subject}"),
            )
        mailbox = self.mailboxes[user]
        if not mailbox.gmail_enabled:
            return 400, {}, google_error(400, "FAILED_PRECONDITION", "failedPrecondition", "Mail service not enabled")
        rest = segments[6:]
        needed = READ_SCOPES if method == "GET" else DELETE_SCOPES if method == "DELETE" else CHANGE_SCOPES
        if not token.scopes & needed:
            return (
                403,
                {},
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "insufficientPermissions",
                    "Request had insufficient authentication scopes.",
                ),
            )
        if not rest and method == "GET":
            return self._list(mailbox, parse_qs(parts.query))
        message = mailbox.messages.get(rest[0]) if rest else None
        if message is None:
            return 404, {}, google_error(404, "NOT_FOUND", "notFound", "Requested entity was not found.")
        return self._act(mailbox, message, method, rest[1:], body)

    def _list(self, mailbox: Mailbox, query: dict[str, list[str]]) -> Reply:
        wanted = parse_query(query.get("q", [""])[0])
        if wanted is None:
            return 400, {}, google_error(400, "INVALID_ARGUMENT", "invalidArgument", "Invalid query")
        spam_trash = query.get("includeSpamTrash", ["false"])[0] == "true"
        limit = int(query.get("maxResults", ["100"])[0])
        hits = [
            {"id": m.id, "threadId": m.id}
            for m in mailbox.messages.values()
            if m.message_id.strip("<>").lower() == wanted.strip("<>").lower()
            and (spam_trash or not m.labels & {"SPAM", "TRASH"})
        ]
        answer: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if hits:
            answer["messages"] = hits[:limit]
        return 200, {}, answer

    def _act(self, mailbox: Mailbox, message: StoredMessage, method: str, action: list[str], body: bytes) -> Reply:
        if method == "DELETE" and not action:
            del mailbox.messages[message.id]
            return 204, {}, None
        if method == "GET" and not action:
            return 200, {}, self._resource(message)
        verb = action[0] if method == "POST" and len(action) == 1 else ""
        if verb == "trash":
            message.before_trash = message.labels & {"INBOX", "SPAM"}
            message.labels = (message.labels - {"INBOX", "SPAM"}) | {"TRASH"}
        elif verb == "untrash":
            message.labels = (message.labels - {"TRASH"}) | message.before_trash
        elif verb == "modify":
            change = json.loads(body or b"{}")
            add, remove = set(change.get("addLabelIds", [])), set(change.get("removeLabelIds", []))
            unknown = sorted((add | remove) - KNOWN_LABELS)
            if unknown:
                return 400, {}, google_error(400, "INVALID_ARGUMENT", "invalidArgument", f"Invalid label: {unknown[0]}")
            message.labels = (message.labels - remove) | add
        else:
            return 404, {}, google_error(404, "NOT_FOUND", "notFound", "Not Found")
        return 200, {}, self._resource(message)

    @staticmethod
    def _resource(message: StoredMessage) -> dict[str, Any]:
        return {"id": message.id, "threadId": message.id, "labelIds": sorted(message.labels)}

    def batch(self, content_type: str, body: bytes, authorization: str) -> tuple[int, dict[str, str], bytes]:
        """POST /batch/gmail/v1: each part is one API call; the answers come back in reverse order."""
        with self._lock:
            self.counts["batch"] += 1
        request = BytesParser(policy=WIRE).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        parts = request.get_payload() if request.is_multipart() else []
        if not parts or len(parts) > 100:
            error = google_error(400, "INVALID_ARGUMENT", "badRequest", "A batch holds 1 to 100 calls.")
            return 400, {"Content-Type": "application/json"}, json.dumps(error).encode()
        reply = MIMEMultipart("mixed", policy=WIRE)
        for part in reversed(parts):
            raw = part.get_payload(decode=True)
            answer = self._batch_part(raw if isinstance(raw, bytes) else b"", authorization)
            out = MIMEApplication(answer, "http", _encoder=encode_noop, policy=WIRE)
            del out["MIME-Version"]
            out["Content-Transfer-Encoding"] = "binary"
            out["Content-ID"] = "<response-" + str(part.get("Content-ID", "")).strip().strip("<>") + ">"
            reply.attach(out)
        _, _, payload = reply.as_bytes(policy=WIRE).partition(b"\r\n\r\n")
        return 200, {"Content-Type": str(reply["Content-Type"])}, payload

    def _batch_part(self, raw: bytes, outer_authorization: str) -> bytes:
        head, _, payload = raw.partition(b"\r\n\r\n")
        request_line, _, header_block = head.partition(b"\r\n")
        method, target, *_ = [*request_line.decode().split(" "), "", ""]
        headers = BytesHeaderParser(policy=WIRE).parsebytes(header_block + b"\r\n\r\n")
        status, extra, answer = self.api(
            method, target, str(headers.get("Authorization", outer_authorization)), payload
        )
        lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        data = json.dumps(answer).encode() if answer is not None else b""
        if data:
            lines.append("Content-Type: application/json; charset=UTF-8")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends its thread
    disable_nagle_algorithm = True  # headers and body in separate writes would wait for a delayed ACK

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, reply: Reply) -> None:
        status, headers, answer = reply
        payload = json.dumps(answer).encode() if answer is not None else b""
        if payload:
            headers = {**headers, "Content-Type": "application/json; charset=UTF-8"}
        self._send(status, headers, payload)

    def _dispatch(self) -> None:
        fake: FakeGmail = self.server.fake  # type: ignore[attr-defined]
        body = self._body()
        authorization = self.headers.get("Authorization", "")
        if self.command == "POST" and self.path == "/token":
            self._send_json(fake.token(body))
            return
        with fake._lock:
            fake.counts["http"] += 1
        if self.command == "POST" and self.path == "/batch/gmail/v1":
            self._send(*fake.batch(self.headers.get("Content-Type", ""), body, authorization))
            return
        self._send_json(fake.api(self.command, self.path, authorization, body))

    do_GET = do_POST = do_DELETE = _dispatch


@contextmanager
def running(pki: TestPki) -> Iterator[FakeGmail]:
    """A started fake, stopped at the end."""
    with FakeGmail(pki) as fake:
        yield fake
