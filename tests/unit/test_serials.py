"""Serial numbers: random, positive, at most 20 octets, typed in any common form."""

import pytest

from kinko.ca.errors import InputError
from kinko.ca.serials import format_serial, new_serial, normalize_serial, parse_serial


def test_new_serials_are_positive_128_bit_and_distinct() -> None:
    serials = [new_serial() for _ in range(2000)]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**128 for s in serials)
    # DER INTEGER of a 128-bit positive value needs at most 17 octets (a leading 0x00): <= 20.
    assert all(len(s.to_bytes(17, "big", signed=True)) <= 20 for s in serials)
    # Random bits: some serials use the top bit, which a counter never would.
    assert any(s.bit_length() == 128 for s in serials)


def test_format_is_uppercase_hex_padded_to_octets() -> None:
    assert format_serial(0x5F0C) == "5F0C"
    assert format_serial(0xABC) == "0ABC"
    assert format_serial(255) == "FF"


@pytest.mark.parametrize("typed", ["5f0c3a", "5F0C3A", "5f:0c:3a", "5F:0C:3A", " 0x5f0c3a ", "05F0C3A"])
def test_parse_accepts_either_case_and_colons(typed: str) -> None:
    assert parse_serial(typed) == 0x5F0C3A
    assert normalize_serial(typed) == "5F0C3A"


@pytest.mark.parametrize("typed", ["", "xyz", "12-34", "0", "00:00", "1" * 41])
def test_parse_refuses_non_serials(typed: str) -> None:
    with pytest.raises(InputError, match="not a serial number"):
        parse_serial(typed)
