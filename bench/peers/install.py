"""Install the peers from Debian's packages when they are missing (idempotent)."""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = {
    "sa": [
        "spamassassin",
        "spamc",
        "libmail-spf-perl",
        "libsys-syslog-perl",
        "libbsd-resource-perl",
        "libencode-detect-perl",
        # sa-compile needs a compiler and re2c
        "sa-compile",
        "re2c",
        "gcc",
        "make",
    ],
    "rspamd": ["rspamd", "redis-tools"],
}


def _installed(pkg: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False).stdout
    if "install ok installed" in out:
        return True
    # a virtual package (libsys-syslog-perl is provided by perl): apt would install nothing
    sim = subprocess.run(["apt-get", "install", "-s", pkg], capture_output=True, text=True, check=False)
    return sim.returncode == 0 and "\nInst " not in "\n" + sim.stdout


def ensure(systems: list[str]) -> list[str]:
    """apt-get install whatever is missing; return the names installed (empty when all were there)."""
    wanted = [p for s in systems for p in PACKAGES.get(s, [])]
    missing = [p for p in dict.fromkeys(wanted) if not _installed(p)]
    if not missing:
        print(f"install: all present ({', '.join(dict.fromkeys(wanted)) or 'nothing needed'})")
        return []
    if shutil.which("apt-get") is None:
        raise SystemExit(f"install: missing {missing} and no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"install: apt-get install {' '.join(missing)}", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, capture_output=True)
    print(f"install: installed {' '.join(missing)}")
    return missing
