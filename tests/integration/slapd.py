"""A private OpenLDAP server (Debian's `slapd`) for integration tests.

Its configuration, database and log live in a temporary directory; it listens on one free loopback port
and runs in the foreground as a child of the test, which stops it (and waits for it) even when the test
fails. The directory is loaded with `slapadd` before the server starts.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.harness import free_port, wait_for_port
from tests.services import unavailable

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
SLAPADD = shutil.which("slapadd") or ("/usr/sbin/slapadd" if Path("/usr/sbin/slapadd").exists() else None)

BASE = "dc=example,dc=com"
SERVICE_DN = f"cn=mailwarden,ou=services,{BASE}"
SERVICE_PASSWORD = "s3cret-bind"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {root}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{base}"
directory {root}/db
maxsize 16777216
# like a real directory: nobody reads anything without a successful bind
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"""

# alice and carol are mailboxes; carol also receives as info@ (an alias in a second attribute)
DIRECTORY_LDIF = f"""\
dn: {BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=services,{BASE}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: mailwarden
sn: mailwarden
userPassword: {SERVICE_PASSWORD}

dn: uid=alice,ou=people,{BASE}
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@example.com

dn: uid=carol,ou=people,{BASE}
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Example
mail: carol@example.com
mail: info@example.com
"""


@dataclass
class PrivateSlapd:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert SLAPD is not None
        log = (self.root / "slapd.log").open("ab")
        # -d 0: stay in the foreground, a child of the test, without debug output
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-h", f"ldap://127.0.0.1:{self.port}/", "-f", str(self.root / "slapd.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise AssertionError("slapd did not start:\n" + (self.root / "slapd.log").read_text()) from None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def private_slapd() -> Iterator[PrivateSlapd]:
    """A loaded, running slapd on a free loopback port; stopped and removed afterwards."""
    if SLAPD is None or SLAPADD is None:
        unavailable("slapd is not installed (apt-get install slapd)")
    assert SLAPADD is not None
    root = Path(tempfile.mkdtemp(prefix="mailwarden-slapd-"))
    instance = PrivateSlapd(root, free_port())
    try:
        (root / "db").mkdir()
        (root / "slapd.conf").write_text(SLAPD_CONF.format(root=root, base=BASE))
        (root / "directory.ldif").write_text(DIRECTORY_LDIF)
        loaded = subprocess.run(
            [SLAPADD, "-f", str(root / "slapd.conf"), "-l", str(root / "directory.ldif")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if loaded.returncode != 0:
            raise AssertionError(f"slapadd failed: {loaded.stdout}{loaded.stderr}")
        instance.start()
        try:
            yield instance
        finally:
            instance.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
