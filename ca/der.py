"""The few DER encodings Kinko writes by hand, where a benchmark showed the ASN.1 library
was the bottleneck (CRL entries, OCSP responses). Pure; tests compare every structure
built with these against `cryptography` or asn1crypto output.
"""

from __future__ import annotations

import datetime as dt


def length(size: int) -> bytes:
    """DER length octets (short form under 128, long form above)."""
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def tlv(tag: int, content: bytes) -> bytes:
    """One tag-length-value."""
    return bytes((tag,)) + length(len(content)) + content


def sequence(*parts: bytes) -> bytes:
    """A SEQUENCE of already encoded parts."""
    return tlv(0x30, b"".join(parts))


def _digits(text: str) -> str:
    # "2026-11-25T10:00:00Z" -> "20261125100000Z"
    return text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19] + "Z"


def generalized_time(when: str | dt.datetime) -> bytes:
    """GeneralizedTime YYYYMMDDHHMMSSZ from stored ISO text or an aware datetime."""
    text = when if isinstance(when, str) else when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return b"\x18\x0f" + _digits(text).encode("ascii")


def x509_time(text: str) -> bytes:
    """RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050 (section 4.1.2.5)."""
    digits = _digits(text)
    if digits < "2050":
        return b"\x17\x0d" + digits[2:].encode("ascii")
    return b"\x18\x0f" + digits.encode("ascii")


# CRLReason ENUMERATED values (RFC 5280 section 5.3.1), by Kinko's kebab-case names.
REASON_CODES = {
    "unspecified": 0,
    "key-compromise": 1,
    "ca-compromise": 2,
    "affiliation-changed": 3,
    "superseded": 4,
    "cessation-of-operation": 5,
    "certificate-hold": 6,
    "remove-from-crl": 8,
    "privilege-withdrawn": 9,
    "aa-compromise": 10,
}
