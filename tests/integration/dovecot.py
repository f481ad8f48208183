"""A private Dovecot (LMTP + Sieve) for integration tests: the mailbox a gateway's mail finally lands in.

Everything lives in one temporary directory: the config file, base_dir, state_dir, the log and the
Maildirs. Dovecot listens for LMTP on one free loopback port and nowhere else (`protocols = lmtp`, no
IMAP/POP3). Every address maps to one system user (`nobody`) through static passdb/userdb; each local
part gets its own home with a Maildir. A global Sieve script (`sieve_before`) runs before any user
script: by default the one docs/spam-filter.md shows administrators, filing `X-Spam-Flag: YES` mail
into Junk. The system Dovecot (its configuration and service) is never touched. It needs root: the
master drops privileges per service.

`private_dovecot(imap=True)` (opt-in, for the IMAP clawback connector) serves IMAP too: implicit TLS on
one free port and plain IMAP (STARTTLS offered) on another, with a certificate from tests/fakes/tls.py.
Then the mailboxes are a fixed list of users with passwords (passwd-file; an unknown address is refused,
over LMTP and IMAP alike), a master user may log in as any of them (`user*master`), and every mailbox has
the special-use folders Trash and Junk.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import smtplib
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.tls import TestPki, make_pki
from tests.integration.conftest import unavailable
from tests.integration.harness import free_port, wait_for_port
from tests.processes import end_group

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
SIEVEC = shutil.which("sievec")

# The script docs/spam-filter.md ("Junk folder delivery") gives administrators, word for word.
JUNK_SIEVE = """\
require "fileinto";
if header :is "X-Spam-Flag" "YES" {
  fileinto "Junk";
}
"""

MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailwarden-test-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%n allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
protocol lmtp {{
  mail_plugins = sieve
}}
plugin {{
  sieve_before = {root}/sieve/before.sieve
}}
"""

# The IMAP variant: LMTP as above, plus IMAP over TLS and plain; users and a master user from passwd-files.
IMAP_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailwarden-test-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = lmtp imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{pki_dir}/server.pem
ssl_key = <{pki_dir}/server.key
disable_plaintext_auth = no
# refusals answer at once (no 2 s delay, no growing penalty per client address): tests try wrong passwords
auth_failure_delay = 0
auth_master_user_separator = *
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {root}/auth/master.passwd
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = {root}/auth/users.passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/auth/users.passwd
}}
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
protocol lmtp {{
  mail_plugins = sieve
}}
plugin {{
  sieve_before = {root}/sieve/before.sieve
}}
"""

MASTER_USER = "mailwarden-master"
IMAP_USERS = ("alice@example.com", "bob@example.com", "carol@example.com")


def dovecot_binaries(imap: bool = False) -> tuple[str, str]:
    """`dovecot` and `sievec`; skips (fails when CI=true) without them (or without Dovecot's IMAP server
    when `imap`) or without root."""
    if DOVECOT is None or SIEVEC is None or (imap and not Path("/usr/lib/dovecot/imap").exists()):
        unavailable("dovecot is not installed (apt-get install dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve)")
    if os.geteuid() != 0:
        unavailable("a private dovecot instance needs root")
    assert DOVECOT is not None and SIEVEC is not None
    return DOVECOT, SIEVEC


@dataclass
class ImapAccess:
    """How tests reach the IMAP side of a `private_dovecot(imap=True)`."""

    tls_port: int  # implicit TLS (imaps)
    plain_port: int  # plain IMAP, STARTTLS offered
    pki: TestPki  # `pki.ca_file` verifies the server's certificate
    master_user: str
    master_password: str
    passwords: dict[str, str] = field(default_factory=dict)  # address -> the user's own password


@dataclass
class PrivateDovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    imap: ImapAccess | None = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def maildir(self, local_part: str) -> Path:
        return self.root / "mail" / local_part / "Maildir"

    def inbox(self, local_part: str) -> list[bytes]:
        """New messages in the user's Inbox (`Maildir/new`), oldest first."""
        return _new(self.maildir(local_part))

    def junk(self, local_part: str) -> list[bytes]:
        """New messages in the user's Junk folder (`Maildir/.Junk/new`), oldest first."""
        return _new(self.maildir(local_part) / ".Junk")


def _new(folder: Path) -> list[bytes]:
    new = folder / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))]


def deliver(lmtp_port: int, rcpts: Sequence[str], raw: bytes, sender: str = "sender@example.net") -> None:
    """Deliver one message to each of `rcpts` over LMTP; fails unless every recipient got it. (LMTP answers
    DATA once per recipient, which `smtplib.LMTP.sendmail` does not read.)"""
    with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=30) as lmtp:
        lmtp.ehlo_or_helo_if_needed()
        replies = [lmtp.mail(sender), *(lmtp.rcpt(rcpt) for rcpt in rcpts)]
        if all(code == 250 for code, _ in replies):
            replies = [lmtp.data(raw), *(lmtp.getreply() for _ in rcpts[1:])]
    refused = [(code, text) for code, text in replies if code != 250]
    if refused:
        raise AssertionError(f"LMTP refused: {refused}")


def _imap_setup(root: Path, users: Sequence[str], uid: int, gid: int) -> ImapAccess:
    """The passwd-files, the certificate and the ports of the IMAP variant."""
    auth = root / "auth"
    auth.mkdir()
    pki = make_pki(root / "pki")
    passwords = {user: secrets.token_urlsafe(12) for user in users}
    access = ImapAccess(free_port(), free_port(), pki, MASTER_USER, secrets.token_urlsafe(12), passwords)
    lines = [f"{u}:{{PLAIN}}{pw}:{uid}:{gid}::{root}/mail/{u.split('@')[0]}::" for u, pw in passwords.items()]
    (auth / "users.passwd").write_text("\n".join(lines) + "\n")
    (auth / "master.passwd").write_text(f"{MASTER_USER}:{{PLAIN}}{access.master_password}\n")
    return access


@contextlib.contextmanager
def private_dovecot(
    sieve: str = JUNK_SIEVE, *, imap: bool = False, users: Sequence[str] = IMAP_USERS
) -> Iterator[PrivateDovecot]:
    """Start a private Dovecot with LMTP on a free loopback port (and IMAP with `imap=True`, for `users`);
    stop it and remove its directory after."""
    dovecot, sievec = dovecot_binaries(imap)
    # not under pytest's tmp_path (mode 0700): the mail user must reach its home
    root = Path(tempfile.mkdtemp(prefix="mailwarden-dovecot-"))
    try:
        root.chmod(0o755)
        for name in ("run", "state", "sieve", "mail"):
            (root / name).mkdir()
        shutil.chown(root / "mail", MAIL_USER, MAIL_GROUP)
        port = free_port()
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        conf = root / "dovecot.conf"
        access = _imap_setup(root, users, uid, gid) if imap else None
        if access is None:
            conf.write_text(CONFIG.format(root=root, port=port, uid=uid, gid=gid))
        else:
            conf.write_text(
                IMAP_CONFIG.format(
                    root=root,
                    port=port,
                    uid=uid,
                    gid=gid,
                    pki_dir=access.pki.cert_file.parent,
                    imap_port=access.plain_port,
                    imaps_port=access.tls_port,
                )
            )
        script = root / "sieve" / "before.sieve"
        script.write_text(sieve)
        # compiled ahead, as an administrator would: the mail user cannot write the global script's directory
        compiled = subprocess.run(
            [sievec, "-c", str(conf), str(script)], capture_output=True, text=True, timeout=60, check=False
        )
        if compiled.returncode != 0:
            raise AssertionError(f"sievec failed: {compiled.stdout}{compiled.stderr}")
        log = (root / "master.out").open("wb")
        # a session of its own: its process group holds the master and every service it forks
        process = subprocess.Popen(
            [dovecot, "-F", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        instance = PrivateDovecot(root, port, process, access)
        try:
            try:
                for listening in (port, *((access.tls_port, access.plain_port) if access else ())):
                    wait_for_port(listening)
            except TimeoutError:
                out = (root / "master.out").read_text(errors="replace")
                raise AssertionError(f"dovecot did not start: {out}\n{instance.log()}") from None
            yield instance
        finally:
            _stop(process)
            log.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the master, which ends its services; SIGKILL to all of them if that hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    end_group(process.pid, grace=10)
