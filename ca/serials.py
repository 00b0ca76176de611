"""Serial numbers: 128 random bits from the OS CSPRNG, positive, at most 20 octets."""

from __future__ import annotations

import re

from kinko.ca.errors import InputError, NotFound

SERIAL_BITS = 128
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def new_serial() -> int:
    """Returns a fresh random positive serial number (RFC 5280 section 4.1.2.2)."""
    import secrets  # here: every command reads serials, only issuance draws them (3 ms at start-up)

    while True:
        value = secrets.randbits(SERIAL_BITS)
        # Zero is not a positive integer; the chance is 2**-128 but the rule is absolute.
        if value > 0:
            return value


def format_serial(serial: int) -> str:
    """Formats a serial as uppercase hex without colons, padded to whole octets like openssl."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> int:
    """Parses a serial typed by a person: hex in either case, with or without colons."""
    cleaned = text.strip().replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or not _HEX.match(cleaned):
        raise InputError("not a serial number: {text!r} (expected hexadecimal, e.g. 5F0C3A…)", text=text)
    value = int(cleaned, 16)
    if value <= 0 or value.bit_length() > 159:
        raise InputError("not a serial number: {text!r} (must be positive and at most 20 octets)", text=text)
    return value


def normalize_serial(text: str) -> str:
    """Returns the canonical stored form of a typed serial."""
    return format_serial(parse_serial(text))


def no_such_certificate(text: str) -> NotFound:
    """The refusal for a serial not in the registry, naming it as it was typed (leading zeros kept)."""
    typed = text.strip().replace(":", "").upper().removeprefix("0X")
    return NotFound("no certificate with serial {serial} in this CA's registry", serial=typed)
