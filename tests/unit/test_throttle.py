"""The sign-in throttle's rules, on a clock the tests move."""

from __future__ import annotations

import pytest

from mailwarden.throttle import SignInThrottle, address_key

ATTACKER, OWNER = "203.0.113.9", "198.51.100.20"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def fail(throttle: SignInThrottle, account: str, address: str) -> None:
    """One attempt that is admitted and turns out wrong."""
    assert throttle.admit(account, address) == 0


def test_an_address_gets_three_free_failures_then_waits_twice_as_long_each_time(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for _ in range(3):
        fail(throttle, "admin", ATTACKER)
    waits = []
    for _ in range(12):
        wait = throttle.admit("admin", ATTACKER)
        waits.append(wait)
        clock.now += wait
        fail(throttle, "admin", ATTACKER)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]


def test_an_address_guessing_at_many_accounts_is_slowed_too(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for account in ("ana", "bob", "carol"):
        fail(throttle, account, ATTACKER)
    assert throttle.admit("dave", ATTACKER) == 1
    assert throttle.admit("dave", OWNER) == 0


def test_a_clean_address_is_never_held_back_by_failures_on_the_account(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for host in range(1, 50):
        throttle.admit("admin", f"203.0.113.{host}")  # each bot address's guess, admitted or not
    assert throttle.admit("admin", f"203.0.113.{1}") > 60  # a bot address waits for the account
    assert throttle.admit("admin", OWNER) == 0


def test_an_address_the_account_signed_in_from_is_trusted_after_a_typo(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    assert throttle.admit("admin", OWNER) == 0
    throttle.succeeded("admin", OWNER)
    for host in range(1, 20):
        throttle.admit("admin", f"203.0.113.{host}")
    fail(throttle, "admin", OWNER)  # a typo
    assert throttle.admit("admin", OWNER) == 0
    assert throttle.admit("bob", OWNER) == 0  # trust is per account, but bob's account is not under attack
    assert throttle.admit("admin", "192.0.2.1") == 0  # a new address of the owner: clean


def test_a_success_takes_its_attempt_back_but_keeps_earlier_failures(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for _ in range(3):
        fail(throttle, "admin", ATTACKER)
        assert throttle.admit("admin", OWNER) == 0
        throttle.succeeded("admin", OWNER)
    assert throttle.admit("admin", ATTACKER) == 1  # a correct password elsewhere does not reset the guesser


def test_parallel_attempts_count_before_their_result_is_known(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    admitted = [throttle.admit("admin", ATTACKER) for _ in range(20)]
    assert admitted.count(0) == 3


def test_failures_are_forgotten_an_hour_after_the_last_one(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for _ in range(3):
        fail(throttle, "admin", ATTACKER)
    for _ in range(5):
        clock.now += throttle.admit("admin", ATTACKER)
        fail(throttle, "admin", ATTACKER)
    clock.now += 3599
    assert throttle.admit("admin", ATTACKER) == 0  # the 32 s wait is long over: one more try
    clock.now += 3600
    for _ in range(3):
        fail(throttle, "admin", ATTACKER)  # the count started again at zero


def test_the_tables_are_bounded_and_drop_the_oldest_first(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock, capacity=100)
    for _ in range(5):
        throttle.admit("admin", ATTACKER)
    for host in range(200):
        clock.now += 0.001
        throttle.admit(f"user{host}", f"192.0.2.{host % 250}")
    assert len(throttle._addresses._entries) <= 100 and len(throttle._accounts._entries) <= 100
    assert throttle.admit("admin", ATTACKER) == 0  # evicted: memory stays bounded, whatever is sprayed


def test_account_names_differing_in_case_are_one_account(clock: Clock) -> None:
    throttle = SignInThrottle(clock=clock)
    for name in ("admin", "Admin", "ADMIN"):
        throttle.admit(name, f"203.0.113.{len(name) + ord(name[0])}")
    throttle.admit("aDmin", "203.0.113.200")
    assert throttle.admit("AdMiN", "203.0.113.200") > 0


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_clients_are_throttled_by_their_64(ip: str, key: str) -> None:
    assert address_key(ip) == key
