"""Operator identity: the OS account of the effective uid, never $USER (anyone can set it)."""

from __future__ import annotations

import os
import pwd


def current_login() -> str:
    """The login name of the effective uid; falls back to 'uid:N' for an account without a name."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
