"""Enrollment codes: one-time, typable, 100 bits of secret, stored only as a hash.

A code reads like `7K3M-QX9P-2VHD-T8RW-N4JF-6CGB-YE1A`: Crockford base32 (no I, L, O, U;
typing mistakes between 0/O and 1/I/L are forgiven). The first two groups are a 40-bit
lookup key that finds the enrollment; the five others carry 100 random bits.
"""

from __future__ import annotations

import hashlib
import hmac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
GROUPS = 7
GROUP_SIZE = 4
# Two groups (40 bits), not one: with 20 bits a busy CA ran out of free lookups, and a
# random guess found some holder's row often enough to time the difference.
LOOKUP_GROUPS = 2
# Codes made before the lookup grew (they expire within the acquisition window) are found
# by their first group.
LEGACY_LOOKUP_GROUPS = 1
SECRET_BITS = (GROUPS - LOOKUP_GROUPS) * GROUP_SIZE * 5
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def new_code() -> str:
    """A fresh code, grouped for reading aloud and typing."""
    import secrets  # here: every command checks roles through the ledger, only enrolling makes codes

    characters = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_SIZE))
    return "-".join(characters[i : i + GROUP_SIZE] for i in range(0, len(characters), GROUP_SIZE))


def normalize(code: str) -> str | None:
    """The code's canonical characters (case, spaces, hyphens and look-alikes forgiven), or None."""
    cleaned = "".join(code.split()).replace("-", "").upper().translate(_TYPOS)
    if len(cleaned) != GROUPS * GROUP_SIZE or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def lookup_key(normalized: str) -> str:
    """The public part that finds the enrollment row."""
    return normalized[: LOOKUP_GROUPS * GROUP_SIZE]


def lookup_keys(normalized: str) -> tuple[str, str]:
    """The lookup keys a typed code may have been stored under: today's, then the legacy one."""
    return lookup_key(normalized), normalized[: LEGACY_LOOKUP_GROUPS * GROUP_SIZE]


def code_hash(normalized: str) -> str:
    """What is stored: SHA-256 of the whole code (100 random bits make a slow hash unnecessary)."""
    return hashlib.sha256(normalized.encode("ascii")).hexdigest()


def code_commitment(lookup: str, stored_hash: str) -> str:
    """What an enrollment's ledger event records of its code: a hash of the stored hash, never the code,
    so that a code hash rewritten in the database (to a code someone knows) shows at replay."""
    return hashlib.sha256(f"kinko-enrollment\n{lookup}\n{stored_hash}".encode("ascii")).hexdigest()


def matches(normalized: str, stored_hash: str) -> bool:
    """Compares a typed code with the stored hash in constant time."""
    return hmac.compare_digest(code_hash(normalized), stored_hash)
