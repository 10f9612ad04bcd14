"""Typed placeholders for the values the recognizers find, and the way back.

Invariant: within one ``Masker`` the same value always gets the same placeholder
(``[EMAIL_1]``) and a placeholder names one value; a placeholder-shaped string the
caller wrote themselves is never handed out, so restoring never rewrites their text.
A value found anywhere in the request is masked everywhere it occurs in it (even where
its neighbours hid it from the recognizers), and the masked texts are scanned again,
until they hold nothing the recognizers would find; a text that still does after
``_MAX_PASSES`` scans is reported in ``unmasked`` (the caller refuses it, never forwards it).
Restoring replaces exactly the placeholders this masker handed out and leaves anything
else (a placeholder the model mangled, the caller's own brackets) as it is. A
``StreamRestorer`` gives the same text as restoring the whole, however the text is split.
"""

from __future__ import annotations

import re
from collections import Counter

from edgeroute.privacy.recognizers import Disjoint, Found, Scanner

# What a placeholder looks like: a class in capitals and a number, in brackets.
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]{0,19}_\d{1,6}\]")
_LONGEST = 1 + 20 + 1 + 6 + 1
# Masking can expose a value its old neighbours hid ("x@y.com+44 20 ..."), so the texts
# are scanned again until nothing is found, at most this many times.
_MAX_PASSES = 8
_MAX_REPEATED = 256  # distinct values whose every occurrence is masked (longest first)
# What the start of one looks like, at the very end of a text (held back in a stream).
_PARTIAL = re.compile(r"\[(?:[A-Z][A-Z_]{0,19}(?:_\d{0,6})?)?\Z")


def placeholder(kind: str, number: int) -> str:
    return f"[{kind.upper()}_{number}]"


class Masker:
    """One request's masking: finds values with ``scanner`` and swaps them for placeholders."""

    def __init__(self, scanner: Scanner) -> None:
        self._scanner = scanner
        self._by_value: dict[tuple[str, str], str] = {}
        self.originals: dict[str, str] = {}  # placeholder -> the value it stands for
        self._numbers: Counter[str] = Counter()
        self._reserved: set[str] = set()
        self.unmasked: tuple[str, ...] = ()  # classes still found after the last pass

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes masked so far, sorted."""
        return tuple(sorted({kind for kind, _ in self._by_value}))

    def mask_all(self, texts: list[str]) -> list[str]:
        """The texts with every value found replaced by its placeholder."""
        for text in texts:  # first: placeholders the caller wrote are never handed out
            self._reserved.update(PLACEHOLDER.findall(text))
        masked = texts
        for _ in range(_MAX_PASSES):
            found = [self._scanner.find(text) for text in masked]
            if not any(found):
                self.unmasked = ()
                return masked
            for text, values in zip(masked, found, strict=True):
                for f in values:  # numbered in the order they appear
                    self._placeholder(f.kind, text[f.start : f.end])
            known = sorted(self._by_value, key=lambda kv: -len(kv[1]))[:_MAX_REPEATED]
            masked = [
                self._mask(t, self._everywhere(t, f, known))
                for t, f in zip(masked, found, strict=True)
            ]
        left = [f.kind for text in masked for f in self._scanner.find(text)]
        self.unmasked = tuple(sorted(set(left)))
        return masked

    @staticmethod
    def _everywhere(text: str, found: list[Found], known: list[tuple[str, str]]) -> list[Found]:
        """``found`` and every other occurrence in ``text`` of the values already known,
        outside the placeholders already in it."""
        placeholders = [Found(m.start(), m.end(), "") for m in PLACEHOLDER.finditer(text)]
        spans = Disjoint(placeholders)
        for f in found:
            spans.add(f)
        for kind, value in known:
            at = text.find(value)
            while at >= 0:
                spans.add(Found(at, at + len(value), kind))
                at = text.find(value, at + len(value))
        return [f for f in spans.spans if f.kind]

    def _mask(self, text: str, found: list[Found]) -> str:
        parts: list[str] = []
        at = 0
        for f in found:
            parts += [text[at : f.start], self._placeholder(f.kind, text[f.start : f.end])]
            at = f.end
        parts.append(text[at:])
        return "".join(parts)

    def _placeholder(self, kind: str, value: str) -> str:
        known = self._by_value.get((kind, value))
        if known is not None:
            return known
        while True:
            self._numbers[kind] += 1
            name = placeholder(kind, self._numbers[kind])
            if name not in self._reserved:
                break
        self._by_value[(kind, value)] = name
        self.originals[name] = value
        return name

    def restore(self, text: str) -> str:
        """``text`` with each placeholder this masker handed out put back to its value."""
        if "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)


class StreamRestorer:
    """Restores a text that arrives in pieces: a piece's tail that may be the start of a
    placeholder waits for the next piece (or ``flush``)."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        cut = len(text)
        bracket = text.rfind("[", max(0, len(text) - _LONGEST))
        if bracket >= 0 and _PARTIAL.match(text, bracket):
            cut = bracket
        self._pending = text[cut:]
        return self._masker.restore(text[:cut])

    def flush(self) -> str:
        """Whatever was held back, restored as far as it can be."""
        rest, self._pending = self._pending, ""
        return self._masker.restore(rest)
