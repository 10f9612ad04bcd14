"""What the ``edgeroute`` commands share about their arguments: the usage error, and argparse
types for durations, networks and scopes."""

from __future__ import annotations

import argparse
import ipaddress

from edgeroute.pipeline.scopes import parse_scopes

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class UsageError(Exception):
    """A command's arguments do not fit what they name (a key name a tenant already has, a
    model the registry lacks): ``main`` prints the message on one line and exits 2."""


def duration_s(text: str) -> float:
    """``90s``, ``15m``, ``12h`` or ``30d`` in seconds (argparse type: a bad one is exit 2)."""
    number, unit = text[:-1], text[-1:].lower()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use a number and s, m, h or d, such as 30d"
        )
    return value * _UNITS[unit]


def networks(text: str) -> tuple[str, ...]:
    """``10.0.0.0/8,2001:db8::/32`` as normalised CIDRs (argparse type); ``""`` clears."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not an address or network: use CIDRs such as 10.0.0.0/8"
            ) from None
    return tuple(out)


def scopes(text: str) -> tuple[str, ...]:
    """``chat,embeddings`` as a tuple of known scopes (argparse type); ``""`` clears
    (every endpoint)."""
    try:
        return parse_scopes([part.strip() for part in text.split(",") if part.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
