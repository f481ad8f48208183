"""Recipient verifiers without sockets: the list, the LDAP verifier over a scripted directory, the cache."""

from __future__ import annotations

import threading

import pytest

from mailwarden.ingest.recipients import (
    CachedVerifier,
    DirectoryError,
    Known,
    LdapVerifier,
    RecipientList,
    Unavailable,
    Unknown,
    Verification,
    ldap_filter,
    lookup_candidates,
    refusal,
)
from mailwarden.model.recipients import LdapLookup

LOOKUP = LdapLookup(url="ldap://dc1.example.com", base="dc=example,dc=com")


def test_replies_name_the_address() -> None:
    assert refusal(Known(), "a@example.com") is None
    assert (
        str(refusal(Unknown(), "a@example.com"))
        == "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown"
    )
    unavailable = refusal(Unavailable("LDAP down"), "a@example.com")
    assert unavailable is not None and (unavailable.code, unavailable.status) == (451, "4.4.3")
    assert "LDAP down" not in str(unavailable)  # the reason is logged, not told to the sender


@pytest.mark.parametrize(
    ("address", "delimiter", "expected"),
    [
        ("alice@example.com", "+", ("alice@example.com",)),
        ("alice+news@example.com", "+", ("alice+news@example.com", "alice@example.com")),
        ("alice+a+b@example.com", "+", ("alice+a+b@example.com", "alice@example.com")),
        ("+news@example.com", "+", ("+news@example.com",)),  # nothing before the delimiter: no base address
        ("alice+news@example.com", "", ("alice+news@example.com",)),
        ("alice-news@example.com", "-", ("alice-news@example.com", "alice@example.com")),
    ],
)
def test_lookup_candidates(address: str, delimiter: str, expected: tuple[str, ...]) -> None:
    assert lookup_candidates(address, delimiter) == expected


async def test_the_list_knows_its_addresses_their_extensions_and_postmaster() -> None:
    listed = RecipientList(("alice@example.com", "Bob@Example.com"))
    for address in ("alice@example.com", "bob@example.com", "alice+x@example.com", "postmaster@example.com"):
        assert isinstance(await listed.verify(address), Known), address
    for address in ("eve@example.com", "alicex@example.com", "x+alice@example.com"):
        assert isinstance(await listed.verify(address), Unknown), address


def test_filter_values_cannot_change_the_filter() -> None:
    template = "(|(mail={address})(uid={local}))"
    assert ldap_filter(template, "bob@example.com") == "(|(mail=bob@example.com)(uid=bob))"
    # a local part like `*)(uid=*` would otherwise match every entry: escaped, it is a literal value
    assert ldap_filter(template, "*)(uid=*@example.com") == (
        "(|(mail=\\2a\\29\\28uid=\\2a@example.com)(uid=\\2a\\29\\28uid=\\2a))"
    )
    assert ldap_filter("(mail={address})", "a\\b\0@example.com") == "(mail=a\\5cb\\00@example.com)"


class Directory:
    """A scripted directory: the filters it was asked, the entries it has, an error to raise."""

    def __init__(self, entries: set[str], error: Exception | None = None) -> None:
        self.entries = entries
        self.error = error
        self.asked: list[str] = []
        self.threads: set[str] = set()
        self.closed = False
        self.release: threading.Event | None = None

    def exists(self, search_filter: str) -> bool:
        self.asked.append(search_filter)
        self.threads.add(threading.current_thread().name)
        if self.release is not None:
            self.release.wait(5)
        if self.error is not None:
            raise self.error
        return search_filter in self.entries

    def close(self) -> None:
        self.closed = True


async def test_ldap_finds_the_address_or_its_base_address() -> None:
    directory = Directory({"(mail=alice@example.com)"})
    lookup = LdapLookup(url="ldap://dc1.example.com", base="dc=example,dc=com", filter="(mail={address})")
    verifier = LdapVerifier(lookup, directory, delimiter="+", timeout=5)
    assert isinstance(await verifier.verify("alice+lists@example.com"), Known)
    assert directory.asked == ["(mail=alice+lists@example.com)", "(mail=alice@example.com)"]
    assert isinstance(await verifier.verify("bob@example.com"), Unknown)
    assert isinstance(await verifier.verify("postmaster@example.com"), Known)
    assert len(directory.asked) == 3  # postmaster is never looked up
    assert len(directory.threads) == 1 and next(iter(directory.threads)).startswith("ldap")
    await verifier.close()
    assert directory.closed


async def test_a_directory_that_fails_or_hangs_is_unavailable_not_unknown() -> None:
    failing = LdapVerifier(LOOKUP, Directory(set(), DirectoryError("invalidCredentials")), delimiter="+", timeout=5)
    answer = await failing.verify("alice@example.com")
    assert isinstance(answer, Unavailable) and "invalidCredentials" in answer.detail

    hanging = Directory(set())
    hanging.release = threading.Event()
    slow = LdapVerifier(LOOKUP, hanging, delimiter="+", timeout=0.05)
    answer = await slow.verify("alice@example.com")
    hanging.release.set()
    assert isinstance(answer, Unavailable) and "did not answer within 0.05 s" in answer.detail
    await slow.close()
    await failing.close()


class Scripted:
    def __init__(self, answers: dict[str, Verification]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def verify(self, address: str) -> Verification:
        self.asked.append(address)
        return self.answers[address]

    async def close(self) -> None:
        return None


async def test_the_cache_keeps_known_longer_than_unknown_and_never_unavailable() -> None:
    now = [0.0]
    inner = Scripted({"a@x.test": Known(), "b@x.test": Unknown(), "c@x.test": Unavailable("down")})
    cache = CachedVerifier(inner, known_seconds=3600, unknown_seconds=300, clock=lambda: now[0])
    for _ in range(2):
        for address in ("a@x.test", "b@x.test", "c@x.test"):
            await cache.verify(address)
    assert inner.asked == ["a@x.test", "b@x.test", "c@x.test", "c@x.test"]
    now[0] = 301.0
    await cache.verify("a@x.test")
    await cache.verify("b@x.test")
    assert inner.asked[4:] == ["b@x.test"]  # the unknown answer expired, the known one did not
    now[0] = 3602.0
    await cache.verify("a@x.test")
    assert inner.asked[5:] == ["a@x.test"]


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    inner = Scripted({f"{n}@x.test": Unknown() for n in range(4)})
    cache = CachedVerifier(inner, known_seconds=60, unknown_seconds=60, max_entries=2)
    for address in ("0@x.test", "1@x.test", "0@x.test", "2@x.test", "0@x.test", "1@x.test"):
        await cache.verify(address)
    assert inner.asked == ["0@x.test", "1@x.test", "2@x.test", "1@x.test"]
