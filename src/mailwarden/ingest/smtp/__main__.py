"""`python -m mailwarden.ingest.smtp hash-password`: print an `auth_users` hash for a password."""

from __future__ import annotations

import argparse
import getpass
import sys

from mailwarden.ingest.access import hash_password


def main(argv: list[str] | None = None) -> int:
    """`python -m mailwarden.ingest.smtp hash-password`: print an `auth_users` hash for a password."""
    parser = argparse.ArgumentParser(prog="python -m mailwarden.ingest.smtp")
    parser.add_argument("command", choices=["hash-password"])
    parser.parse_args(argv)
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("empty password refused", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
