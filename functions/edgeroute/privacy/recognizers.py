"""Personal data and secrets in free text: where each value is and of which class.

Invariant: the work is linear in the text. Every pattern has bounded repeats and can
start only where a run of its characters starts (a lookbehind refuses the middle of a
run), so a megabyte of hostile text costs one pass per pattern. Checksums, country
tables, calendar dates and context words keep look-alikes (order numbers, dates,
versions) out. Phone numbers are confirmed by ``phonenumbers`` (``PhoneNumberMatcher``,
leniency VALID) within a budget of look-ups per scan; once it is spent, a phone-shaped
run of 7 to 15 digits counts as a phone, so a flood costs over-masking, never a leak.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgeroute.privacy.checks import (
    entropy_bits,
    is_card,
    is_cn_resident_id,
    is_date,
    is_iban,
    is_us_ssn,
)

# The classes, highest precedence first: where two findings overlap, the earlier wins.
CLASSES: tuple[str, ...] = (
    "secret",
    "email",
    "iban",
    "card",
    "cn_resident_id",
    "us_ssn",
    "ip_address",
    "passport",
    "phone",
)

PHONE_LOOKUPS = 1000  # phonenumbers look-ups per scan (~0.1 ms each)


@dataclass(frozen=True)
class Found:
    """One value in a text: ``text[start:end]`` is of class ``kind``."""

    start: int
    end: int
    kind: str


# Local part and domain in ASCII and Latin letters with accents ("josé.garcía@"); CJK
# text often runs into an address without a space, so CJK is never part of one.
_LATIN = "A-Za-z0-9\u00c0-\u024f"
_EMAIL = re.compile(
    rf"(?<![{_LATIN}._%+-])[{_LATIN}][{_LATIN}._%+-]{{0,63}}"
    rf"@(?:[{_LATIN}-]{{1,63}}\.){{1,8}}([A-Za-z]{{2,24}})(?![{_LATIN}-])"
)
_FILE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "js", "css"})

# Groups of digits joined by single separators, after an optional "+44 " and "(20) "
# ("(415) 555-2671", "+44 20 7946 0958"). Each group ends at a non-digit, so a run splits
# one way only; a run that goes on (another separator and digit) is not a phone number,
# and nor is any part of it.
_PHONE_RUN = re.compile(
    r"(?<![A-Za-z0-9+])(?<![A-Za-z][-_/#])"  # not glued to a code: INV-2024-000871
    r"(?:\+ ?\d{1,4}[ .\-]?(?:\(\d{1,5}\) ?)?|\(\d{1,5}\) ?|(?<!\d[ .\-/]))"
    r"(?:\d{1,15}[ .\-/]){0,6}\d{1,15}"
    r"(?![A-Za-z0-9]|[ .\-/]\d)"
)
# Numbers named as something else just before: "Order #4155552671", "订单号 13800138000".
_NOT_PHONE_CONTEXT = re.compile(
    r"(?i)(?:order|invoice|tracking|ref|reference|sku|isbn|serial|part|model|account|"
    r"订单|单号|编号|发票)\W{0,3}(?:no\.?|number|id|号)?\W{0,3}\Z"
)
_PHONE_MARGIN = 12  # characters of context each side for the matcher's date/time checks

_CARD = re.compile(r"(?<![A-Za-z0-9])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![A-Za-z0-9]|[ -]\d)")
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?"
    r"(?![A-Za-z0-9])"
)
_CN_ID = re.compile(r"(?<![A-Za-z0-9])[1-9]\d{16}[0-9Xx](?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![A-Za-z0-9-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![A-Za-z0-9]|-\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social security|soc\.? sec\.?)")

_IPV4 = re.compile(r"(?<![A-Za-z0-9_.])(?:\d{1,3}\.){3}\d{1,3}(?![A-Za-z0-9_]|\.\d)")
# Groups end at a colon, so a run splits one way; the last may be a dotted quad (::ffff:1.2.3.4).
_IPV6 = re.compile(
    r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})"
    r"(?![A-Za-z0-9_:]|\.\d)"
)
# Dotted numbers named as something else just before: versions, builds, sections.
_NOT_ADDRESS_CONTEXT = re.compile(
    r"(?i)(?:version|release|build|ver\.?|v|chapter|section|clause|figure|table|step|§)\s*$"
)

_PASSPORT_CONTEXT = re.compile(
    r"(?i:passport|pasaporte|passeport|reisepass|passaporto|паспорт)|护照|護照|旅券"
)
_PASSPORT = re.compile(r"(?<![A-Za-z0-9])[A-Z0-9]{6,9}(?![A-Za-z0-9])")
_CONTEXT_REACH = 40  # characters after a context word where its value may start
_VALUE_REACH = 64  # longer than any context-gated value, so none is cut short

_TOKEN_CHARS = r"[A-Za-z0-9_-]"
# edgeroute, OpenAI/Anthropic, GitHub, GitLab, Slack and Google keys, by their prefixes.
_SECRET_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9_-])(?:er-|sk-|gh[pousr]_|github_pat_|glpat-|xox[abpors]-|AIza)"
    r"[A-Za-z0-9_-]{20,200}(?![A-Za-z0-9_-])"
)
_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_AWS_SECRET_CONTEXT = re.compile(r"(?i)secret[_ ]?access[_ ]?key|aws[_ ]?secret")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{5,3000})\.[A-Za-z0-9_-]{2,20000}"
    r"\.[A-Za-z0-9_-]{0,3000}(?![A-Za-z0-9_-])"
)
_SECRET_CONTEXT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:(?:api|access|secret|private|client)[_-]?(?:key|secret|token)"
    r"|(?:auth|refresh|bearer|session)[_-]?token|token|secret|password|passwd|apikey)"
    r"[\"']?[ \t]{0,3}(?:[:=]|=>)[ \t]{0,3}[\"']?"
    r"|bearer[ \t]{1,3}"
)
_SECRET_VALUE = re.compile(r"[A-Za-z0-9_\-./+=~]{16,512}(?![A-Za-z0-9_\-./+=~])")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _emails(text: str) -> Iterator[Found]:
    for m in _EMAIL.finditer(text):
        if m.group(1).lower() not in _FILE_SUFFIXES:
            yield Found(m.start(), m.end(), "email")


def _cards(text: str) -> Iterator[Found]:
    for m in _CARD.finditer(text):
        raw = m.group()
        separators = {ch for ch in raw if not ch.isdigit()}
        if len(separators) <= 1 and is_card(_digits(raw)):
            yield Found(m.start(), m.end(), "card")


def _ibans(text: str) -> Iterator[Found]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        while True:  # a word after a spaced IBAN may have been taken for its last group
            if is_iban(raw.replace(" ", "").upper()):
                yield Found(m.start(), m.start() + len(raw), "iban")
                break
            if " " not in raw:
                break
            raw = raw[: raw.rindex(" ")]


def _cn_ids(text: str) -> Iterator[Found]:
    for m in _CN_ID.finditer(text):
        if is_cn_resident_id(m.group()):
            yield Found(m.start(), m.end(), "cn_resident_id")


def _ssns(text: str) -> Iterator[Found]:
    for m in _SSN.finditer(text):
        area, separator, group, serial = m.groups()
        if not separator and not _SSN_CONTEXT.search(text, max(0, m.start() - 30), m.start()):
            continue  # nine bare digits are an SSN only where the text says so
        if is_us_ssn(area, group, serial):
            yield Found(m.start(), m.end(), "us_ssn")


def _is_netmask(octets: list[int]) -> bool:
    bits = "".join(f"{o:08b}" for o in octets)
    return "01" not in bits


def _ips(text: str) -> Iterator[Found]:
    for m in _IPV6.finditer(text):
        groups = m.group().split(":")
        if sum(1 for g in groups if g) < 2 or max(len(g) for g in groups) < 3:
            continue  # "a::b", "12:30:45" and the like
        try:
            address = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if not (address.is_loopback or address.is_unspecified):
            yield Found(m.start(), m.end(), "ip_address")
    for m in _IPV4.finditer(text):
        octets = [int(o) for o in m.group().split(".")]
        if max(octets) > 255 or any(len(o) > 1 and o[0] == "0" for o in m.group().split(".")):
            continue
        before = text[max(0, m.start() - 12) : m.start()]
        if _NOT_ADDRESS_CONTEXT.search(before) or octets[0] in (0, 127) or _is_netmask(octets):
            continue
        yield Found(m.start(), m.end(), "ip_address")


def _after_context(
    text: str, context: re.Pattern[str], value: re.Pattern[str]
) -> Iterator[re.Match[str]]:
    """Values within reach after each context word (each searched once)."""
    searched = 0
    for word in context.finditer(text):
        start = max(word.end(), searched)
        end = word.end() + _CONTEXT_REACH
        for m in value.finditer(text, start, end + _VALUE_REACH):
            if m.start() < end:
                searched = m.end()
                yield m
        searched = max(searched, end)


def _passports(text: str) -> Iterator[Found]:
    for m in _after_context(text, _PASSPORT_CONTEXT, _PASSPORT):
        token = m.group()
        digits = sum(ch.isdigit() for ch in token)
        if digits < 5 or len(token) - digits > 3:
            continue
        if digits == len(token) == 8 and is_date(token, past=False):
            continue  # an expiry or birth date written as 20300101
        yield Found(m.start(), m.end(), "passport")


def _is_jwt_header(part: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return isinstance(header, dict) and "alg" in header


def _looks_random(value: str) -> bool:
    has_digit = any(ch.isdigit() for ch in value)
    has_letter = any(ch.isalpha() for ch in value)
    return has_digit and has_letter and entropy_bits(value) >= 3.0


def _secrets(text: str) -> Iterator[Found]:
    for m in _SECRET_PREFIXED.finditer(text):
        if _looks_random(m.group()):
            yield Found(m.start(), m.end(), "secret")
    for m in _AWS_KEY_ID.finditer(text):
        yield Found(m.start(), m.end(), "secret")
    for m in _after_context(text, _AWS_SECRET_CONTEXT, _AWS_SECRET):
        if _looks_random(m.group()):
            yield Found(m.start(), m.end(), "secret")
    for m in _JWT.finditer(text):
        if _is_jwt_header(m.group(1)):
            yield Found(m.start(), m.end(), "secret")
    for word in _SECRET_CONTEXT.finditer(text):
        value = _SECRET_VALUE.match(text, word.end())
        if value and _looks_random(value.group()):
            yield Found(value.start(), value.end(), "secret")


class _Phones:
    """Phone numbers, confirmed by ``phonenumbers`` while the look-up budget lasts."""

    def __init__(self, region: str, lookups: int) -> None:
        self.region = region
        self.lookups = lookups

    def __call__(self, text: str) -> Iterator[Found]:
        for run in _PHONE_RUN.finditer(text):
            if not 7 <= sum(ch.isdigit() for ch in run.group()) <= 15:
                continue
            if _NOT_PHONE_CONTEXT.search(text, max(0, run.start() - 20), run.start()):
                continue
            if self.lookups <= 0:
                yield Found(run.start(), run.end(), "phone")  # unchecked: mask rather than leak
                continue
            self.lookups -= 1
            offset = max(0, run.start() - _PHONE_MARGIN)
            window = text[offset : run.end() + _PHONE_MARGIN]
            import phonenumbers  # here: routers with no PII mode never load it (~30 ms)

            matcher = phonenumbers.PhoneNumberMatcher(
                window, self.region, leniency=phonenumbers.Leniency.VALID
            )
            for match in matcher:  # it reads the margins for context; the number is in the run
                start = max(offset + match.start, run.start())
                end = min(offset + match.end, run.end())
                if start < end:
                    yield Found(start, end, "phone")


Recognizer = Callable[[str], Iterator[Found]]


class Scanner:
    """Finds values in the texts of one request; the phone look-up budget is shared by
    all of them, so a request's cost is bounded however its text is split."""

    def __init__(self, phone_region: str = "US", phone_lookups: int = PHONE_LOOKUPS) -> None:
        self._recognizers: dict[str, Recognizer] = {
            "secret": _secrets,
            "email": _emails,
            "iban": _ibans,
            "card": _cards,
            "cn_resident_id": _cn_ids,
            "us_ssn": _ssns,
            "ip_address": _ips,
            "passport": _passports,
            "phone": _Phones(phone_region, phone_lookups),
        }

    def find(self, text: str) -> list[Found]:
        """Every value in ``text``, in order, none overlapping (the higher class wins)."""
        kept = Disjoint()
        for kind in CLASSES:
            for found in self._recognizers[kind](text):
                kept.add(found)
        return kept.spans


class Disjoint:
    """Findings kept in order of start, none overlapping: the first one added wins."""

    def __init__(self, spans: list[Found] | None = None) -> None:
        self.spans: list[Found] = list(spans or ())  # sorted by start
        self._starts = [f.start for f in self.spans]

    def add(self, found: Found) -> bool:
        at = bisect.bisect_left(self._starts, found.start)
        if at > 0 and self.spans[at - 1].end > found.start:
            return False
        if at < len(self.spans) and self.spans[at].start < found.end:
            return False
        self._starts.insert(at, found.start)
        self.spans.insert(at, found)
        return True


def find(text: str, phone_region: str = "US") -> list[Found]:
    """Every value in one text (a fresh phone look-up budget)."""
    return Scanner(phone_region).find(text)
