"""Password guessing slowed down by client address and by account, without locking the owner out.

One `SignInThrottle` serves the console's sign-in and SMTP AUTH. Its rules:

* an address that keeps failing waits longer and longer before its next attempt is even checked
  (`free_failures` without a wait, then 1 s, 2 s, 4 s … up to `max_delay`);
* an account that keeps failing (from any number of addresses) makes the same growing wait apply to
  every address that has itself failed recently, so spreading guesses over many addresses gains one
  guess per fresh address;
* an address with no recent failure ("clean"), or one the account signed in from before, is never
  held back by the account's failures: the right password from there always gets through.

An attempt counts as a failure from the moment it is admitted until `succeeded` takes it back, so a
burst of parallel attempts cannot all pass before the first result is known. Everything is in memory,
bounded (`capacity` entries per table, the oldest dropped first) and forgotten `forget_after` seconds
after the last failure (`trust_for` after the last success).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

_MAX_ACCOUNT_KEY = 320  # longer names are still throttled, by their first 320 characters


def address_key(ip: str) -> str:
    """The throttling key of a client address: IPv4 itself, IPv6 its /64 (one site hands out a whole /64)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def account_key(name: str) -> str:
    """The throttling key of an account name: case does not make a new account to guess at."""
    return name.casefold()[:_MAX_ACCOUNT_KEY]


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class _Table:
    """Failure counts by key, oldest change first, bounded and expiring."""

    def __init__(self, capacity: int, lifetime: float) -> None:
        self._entries: OrderedDict[str, _Failures] = OrderedDict()
        self._capacity = capacity
        self._lifetime = lifetime

    def get(self, key: str, now: float) -> _Failures | None:
        self._expire(now)
        return self._entries.get(key)

    def add(self, key: str, now: float) -> None:
        self._expire(now)
        entry = self._entries.pop(key, None) or _Failures(0, now)
        entry.count += 1
        entry.last = now
        self._entries[key] = entry
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def take_back(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.count -= 1
            if entry.count <= 0:
                del self._entries[key]

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.last < self._lifetime:
                return
            del self._entries[key]


@dataclass
class SignInThrottle:
    """Admits sign-in attempts by (account, address) under the rules in the module docstring."""

    free_failures: int = 3
    base_delay: float = 1.0
    max_delay: float = 900.0
    forget_after: float = 3600.0
    trust_for: float = 30 * 86400.0
    capacity: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _addresses: _Table = field(init=False)
    _accounts: _Table = field(init=False)
    _trusted: _Table = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._addresses = _Table(self.capacity, self.forget_after)
        self._accounts = _Table(self.capacity, self.forget_after)
        self._trusted = _Table(self.capacity, self.trust_for)

    def admit(self, account: str, address: str) -> float:
        """0 when the attempt may be checked now (it counts as failed until `succeeded`); else seconds to wait."""
        account, address = account_key(account), address_key(address)
        with self._lock:
            now = self.clock()
            wait = self._wait(self._addresses.get(address, now), now)
            if not self._clean(account, address, now):
                wait = max(wait, self._wait(self._accounts.get(account, now), now))
            if wait > 0:
                return wait
            self._addresses.add(address, now)
            self._accounts.add(account, now)
            return 0.0

    def succeeded(self, account: str, address: str) -> None:
        """The admitted attempt was right: take its failure back and trust the address for the account."""
        account, address = account_key(account), address_key(address)
        with self._lock:
            self._addresses.take_back(address)
            self._accounts.take_back(account)
            self._trusted.add(_pair(account, address), self.clock())

    def delay(self, failures: int) -> float:
        """How long the next attempt waits after the last of `failures` failures."""
        if failures < self.free_failures:
            return 0.0
        return float(min(self.base_delay * 2 ** min(failures - self.free_failures, 64), self.max_delay))

    def _wait(self, failures: _Failures | None, now: float) -> float:
        if failures is None:
            return 0.0
        return max(0.0, failures.last + self.delay(failures.count) - now)

    def _clean(self, account: str, address: str, now: float) -> bool:
        return self._addresses.get(address, now) is None or self._trusted.get(_pair(account, address), now) is not None


def _pair(account: str, address: str) -> str:
    return f"{address} {account}"
