"""Property-based: each checksum detector accepts generated valid numbers and rejects near-misses."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from mailwarden.pipeline.dlp import checksums


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if checksums.luhn_valid(body + check):
            return body + check
    raise AssertionError("a Luhn check digit always exists")


def _one_digit_changed(number: str, position: int, delta: int) -> str:
    i = position % len(number)
    return number[:i] + str((int(number[i]) + delta) % 10) + number[i + 1 :]


def _transposed(number: str, position: int) -> str:
    i = position % (len(number) - 1)
    return number[:i] + number[i + 1] + number[i] + number[i + 2 :]


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(
        st.sampled_from(
            [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
             ("37", 15), ("3528", 16), ("3589", 19), ("6011", 16), ("644", 16), ("65", 16), ("300", 14),
             ("36", 14), ("62", 16), ("62", 19)]
        )
    )  # fmt: skip
    body = draw(st.text(alphabet="0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    return _luhn_complete(prefix + body)


@given(cards())
def test_generated_cards_are_valid(number: str) -> None:
    assert checksums.card_valid(number)


@given(cards(), st.integers(0, 30), st.integers(1, 9))
def test_card_with_one_digit_changed_fails_luhn(number: str, position: int, delta: int) -> None:
    assert not checksums.luhn_valid(_one_digit_changed(number, position, delta))


@given(cards(), st.integers(0, 30))
def test_card_with_two_digits_transposed_fails_luhn(number: str, position: int) -> None:
    swapped = _transposed(number, position)
    i = position % (len(number) - 1)
    # Luhn cannot see a swap of equal digits or of 0 and 9; every other adjacent swap it catches
    assume(swapped != number and {number[i], number[i + 1]} != {"0", "9"})
    assert not checksums.luhn_valid(swapped)


def test_card_outside_issuer_ranges_is_refused_even_with_valid_luhn() -> None:
    for body in ("1", "7", "8", "9", "50", "56", "2220", "2721", "33"):
        number = _luhn_complete(body + "0" * (14 - len(body)))
        assert checksums.luhn_valid(number)
        assert not checksums.card_valid(number), number
    # right prefix, wrong length: Amex is 15 digits
    assert not checksums.card_valid(_luhn_complete("37" + "0" * 13))


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(checksums.IBAN_LENGTHS)))
    length = checksums.IBAN_LENGTHS[country]
    bban = draw(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=length - 4, max_size=length - 4))
    numeric = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


@given(ibans())
def test_generated_ibans_are_valid(iban: str) -> None:
    assert checksums.iban_valid(iban)


@given(ibans(), st.integers(4, 40), st.integers(1, 9))
def test_iban_with_one_digit_changed_is_refused(iban: str, position: int, delta: int) -> None:
    i = 4 + position % (len(iban) - 4)
    assume(iban[i].isdigit())
    assert not checksums.iban_valid(iban[:i] + str((int(iban[i]) + delta) % 10) + iban[i + 1 :])


@given(ibans(), st.integers(4, 40))
def test_iban_with_two_digits_transposed_is_refused(iban: str, position: int) -> None:
    # MOD 97-10 catches every swap of two adjacent different digits; a letter becomes two digits (B = 11),
    # so a letter swapped with a digit is a different error that the check cannot always see
    spots = [
        k for k in range(4, len(iban) - 1) if iban[k].isdigit() and iban[k + 1].isdigit() and iban[k] != iban[k + 1]
    ]
    assume(spots)
    i = spots[position % len(spots)]
    swapped = iban[:i] + iban[i + 1] + iban[i] + iban[i + 2 :]
    assert not checksums.iban_valid(swapped)


def test_iban_known_examples_and_wrong_length() -> None:
    assert checksums.iban_valid("GB82WEST12345698765432")
    assert checksums.iban_valid("DE89370400440532013000")
    assert not checksums.iban_valid("DE8937040044053201300")  # one short
    assert not checksums.iban_valid("ZZ89370400440532013000")  # no such country


@st.composite
def my_numbers(draw: st.DrawFn) -> str:
    base = draw(st.text(alphabet="0123456789", min_size=11, max_size=11))
    return base + str(checksums.my_number_check_digit(base))


@given(my_numbers())
def test_generated_my_numbers_are_valid(number: str) -> None:
    assert checksums.my_number_valid(number)


@given(my_numbers(), st.integers(0, 11), st.integers(1, 9))
def test_my_number_with_one_digit_changed_is_refused(number: str, position: int, delta: int) -> None:
    # weights 2..7 and 2..6 are all coprime to 11, so any single change moves the remainder; a change
    # between the two remainders that both map to check digit 0 (0 and 1) is the one blind spot
    changed = _one_digit_changed(number, position, delta)
    assume({_my_number_remainder(number), _my_number_remainder(changed)} != {0, 1})
    assert not checksums.my_number_valid(changed)


def _my_number_remainder(number: str) -> int:
    """The weighted sum of the 11 body digits mod 11, from which the check digit is taken."""
    return sum(int(c) * (n + 1 if n <= 6 else n - 5) for n, c in enumerate(reversed(number[:11]), 1)) % 11


@given(my_numbers(), st.integers(0, 9))
def test_my_number_with_adjacent_digits_transposed_is_refused(number: str, position: int) -> None:
    # two adjacent body digits a, b swapped move the remainder by (a - b) times a weight difference of
    # 1 or 5, never a multiple of 11: caught, except between the two remainders (0, 1) that both give 0
    swapped = _transposed(number, position)
    assume(swapped != number)
    assume({_my_number_remainder(number), _my_number_remainder(swapped)} != {0, 1})
    assert not checksums.my_number_valid(swapped)


def test_my_number_transposition_is_caught_for_most_numbers() -> None:
    # the blind spot above (remainders 0 and 1) and swaps with the check digit itself are rare: most
    # transpositions anywhere in the number are caught
    caught = total = 0
    for n in range(0, 10**11, 10**11 // 997):
        number = f"{n:011d}" + str(checksums.my_number_check_digit(f"{n:011d}"))
        for i in range(11):
            swapped = _transposed(number, i)
            if swapped != number:
                total += 1
                caught += not checksums.my_number_valid(swapped)
    assert caught / total > 0.85


@st.composite
def corporate_numbers(draw: st.DrawFn) -> str:
    base = draw(st.text(alphabet="0123456789", min_size=12, max_size=12))
    return str(checksums.corporate_number_check_digit(base)) + base


@given(corporate_numbers())
def test_generated_corporate_numbers_are_valid(number: str) -> None:
    assert checksums.corporate_number_valid(number)


@given(corporate_numbers(), st.integers(0, 12), st.integers(1, 9))
def test_corporate_number_with_one_digit_changed_is_refused(number: str, position: int, delta: int) -> None:
    changed = _one_digit_changed(number, position, delta)
    # a 0<->9 change moves the weighted sum by 9 or 18, which mod 9 cannot see; any other change it can
    i = position % len(number)
    assume({number[i], changed[i]} != {"0", "9"})
    assert not checksums.corporate_number_valid(changed)


@given(corporate_numbers(), st.integers(1, 11))
def test_corporate_number_with_adjacent_digits_transposed_is_refused(number: str, position: int) -> None:
    i = 1 + (position - 1) % 11  # swaps within the 12 base digits (weights 1 and 2 alternate)
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    # a swap changes the sum by the digits' difference; a difference of 9 (0 and 9) is invisible mod 9
    assume(swapped != number and {number[i], number[i + 1]} != {"0", "9"})
    assert not checksums.corporate_number_valid(swapped)


def test_corporate_number_known_example() -> None:
    assert checksums.corporate_number_valid("7000012050002")
    assert not checksums.corporate_number_valid("7000012050003")


@given(
    st.integers(1, 899).filter(lambda a: a != 666),
    st.integers(1, 99),
    st.integers(1, 9999),
)
def test_ssn_valid_structure(area: int, group: int, serial: int) -> None:
    digits = f"{area:03d}{group:02d}{serial:04d}"
    assume(digits not in ("078051120", "219099999", "123456789"))
    assert checksums.ssn_valid(digits)


@given(st.integers(0, 99), st.integers(0, 9999))
def test_ssn_invalid_areas_groups_and_serials(group: int, serial: int) -> None:
    for area in ("000", "666", "900", "987"):
        assert not checksums.ssn_valid(f"{area}{group:02d}{serial:04d}")
    assert not checksums.ssn_valid(f"123{0:02d}{serial:04d}")
    assert not checksums.ssn_valid(f"123{group:02d}0000")
