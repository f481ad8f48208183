"""The relay against a real Postfix as next hop.

Postfix runs as a private instance: its own config_directory, queue_directory and data_directory in a
temporary directory, listening on a free loopback port, relaying `example.com` on to an aiosmtpd sink.
The system Postfix is never touched. Without Postfix the tests skip, or fail when CI=true.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwarden.deliver import DeliveryConfig, Outcome, Relay
from tests.unit.deliver.helpers import MESSAGE, Sink, eventually, make_job

pytestmark = pytest.mark.integration

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None)

MASTER_CF = """\
{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = next-hop.test
mydomain = test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 192.0.2.0/24
relay_domains = example.com
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = reject_unauth_destination
local_recipient_maps =
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_tls_security_level = may
smtpd_tls_cert_file = {root}/cert.pem
smtpd_tls_key_file = {root}/key.pem
smtpd_tls_received_header = yes
smtp_tls_security_level = none
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_cert(root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "next-hop.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / "key.pem").chmod(0o600)


@pytest.fixture
def postfix_binary() -> str:
    if POSTFIX is None or os.geteuid() != 0:
        reason = "postfix is not installed" if POSTFIX is None else "a private postfix instance needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the Postfix integration tests")
        pytest.skip(reason)
    return POSTFIX


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    handler = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="final.test", decode_data=False), "127.0.0.1", 0
    )
    handler.port = server.sockets[0].getsockname()[1]
    yield handler
    server.close()


@pytest.fixture
def postfix(postfix_binary: str, sink: Sink) -> Iterator[int]:
    """A private Postfix on a free loopback port; yields the port."""
    # not under pytest's tmp_path (mode 0700): the postfix user must be able to reach its directories
    root = Path(tempfile.mkdtemp(prefix="mailwarden-postfix-"))
    root.chmod(0o755)
    conf = root / "conf"
    conf.mkdir()
    (root / "data").mkdir()
    (root / "queue").mkdir()
    shutil.chown(root / "data", "postfix")
    _write_cert(root)
    port = _free_port()
    (conf / "main.cf").write_text(MAIN_CF.format(root=root, sink_port=sink.port))
    (conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{port}"))
    env = {**os.environ, "MAIL_CONFIG": str(conf)}
    started = subprocess.run(
        [postfix_binary, "-c", str(conf), "start"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if started.returncode != 0:
        log = (root / "maillog").read_text() if (root / "maillog").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"postfix did not start: {started.stdout}{started.stderr}\n{log}")
    try:
        _wait_for_port(port)
        yield port
    finally:
        subprocess.run([postfix_binary, "-c", str(conf), "stop"], env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while datetime.now(UTC) < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"postfix does not listen on 127.0.0.1:{port}")


@pytest.fixture
def config() -> DeliveryConfig:
    return DeliveryConfig(hostname="gw.mailwarden.test", connect_timeout=5, command_timeout=10, data_timeout=20)


async def test_postfix_accepts_over_starttls_and_passes_the_message_on_unchanged(
    postfix: int, sink: Sink, config: DeliveryConfig
) -> None:
    job = make_job(postfix, recipients=("bob@example.com", "carol@example.com"), require_tls=True)
    result = await Relay(config).send(job)
    assert [r.outcome for r in result.recipients] == [Outcome.DELIVERED] * 2, result
    assert result.recipients[0].status == "2.0.0"
    assert "queued as" in result.recipients[0].text

    await eventually(lambda: len(sink.messages) == 1, within=30)
    received = sink.messages[0]
    assert sorted(received.rcpt_tos) == ["bob@example.com", "carol@example.com"]
    assert received.mail_from == "alice@example.org"
    # Postfix adds its Received header (naming our EHLO and the TLS session); the rest arrives as sent
    first, _, rest = received.content.partition(b"\r\n")
    while rest[:1] in (b" ", b"\t"):
        more, _, rest = rest.partition(b"\r\n")
        first += b"\r\n" + more
    assert first.startswith(b"Received: from gw.mailwarden.test")
    assert b"using TLS" in first
    assert rest == MESSAGE


async def test_postfix_refusal_is_permanent_per_recipient(postfix: int, sink: Sink, config: DeliveryConfig) -> None:
    job = make_job(postfix, recipients=("bob@example.com", "mallory@elsewhere.test"))
    result = await Relay(config).send(job)
    ok, refused = result.recipients
    assert ok.outcome is Outcome.DELIVERED
    assert (refused.outcome, refused.code, refused.status) == (Outcome.PERMANENT, 554, "5.7.1")
    assert "Relay access denied" in refused.text
    await eventually(lambda: len(sink.messages) == 1, within=30)
    assert sink.messages[0].rcpt_tos == ["bob@example.com"]
