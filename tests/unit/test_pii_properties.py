"""Hypothesis properties of PII masking: any text round-trips through mask and restore,
a stream restores the same however it is split, and what is forwarded holds no value
the recognizers would find."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeroute.privacy.masking import Masker, StreamRestorer
from edgeroute.privacy.recognizers import Scanner

VALUES = [
    "jane.doe@example.com",
    "ops@example.org",
    "(415) 555-2671",
    "+44 20 7946 0958",
    "+86 138 0013 8000",
    "4111 1111 1111 1111",
    "378282246310005",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "203.0.113.42",
    "2001:db8::1",
    "11010519491231002X",
    "SSN 536-22-1409",
    "passport X12345678",
    "AKIAIOSFODNN7EXAMPLE",
    "api_key=f3a9c2e17b5d48a09e6c1d2b3a4f5e6d",
    "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12",
]
PLACEHOLDERISH = ["[EMAIL_1]", "[CARD_2]", "[EMAIL_", "[", "]", "_1]", "[PHONE_1", "[X_9]"]
FILLER = st.text(alphabet="ab xyz019:-.@[]_+/()#\n订单号码", max_size=12)
PIECES = st.one_of(st.sampled_from(VALUES), st.sampled_from(PLACEHOLDERISH), FILLER)
TEXTS = st.lists(PIECES, max_size=10).map("".join)
QUICK = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_mask_then_restore_gives_back_any_text(texts: list[str]) -> None:
    masker = Masker(Scanner())
    masked = masker.mask_all(texts)
    assert [masker.restore(text) for text in masked] == texts


@QUICK
@given(text=TEXTS, answer=TEXTS, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_a_stream_restores_the_same_however_it_is_split(
    text: str, answer: str, cuts: list[int]
) -> None:
    masker = Masker(Scanner())
    [masked] = masker.mask_all([text])
    whole = masked + answer  # the model's answer: placeholders, fragments, anything
    points = sorted({c % (len(whole) + 1) for c in cuts})
    pieces = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]
    stream = StreamRestorer(masker)
    assert "".join(stream.feed(p) for p in pieces) + stream.flush() == masker.restore(whole)


@QUICK
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_what_is_forwarded_holds_no_value_the_recognizers_find(texts: list[str]) -> None:
    scanner = Scanner()
    masker = Masker(scanner)
    forwarded = masker.mask_all(texts)
    if masker.unmasked:  # the stage refuses these rather than forward them
        return
    for masked in forwarded:
        leaked = [masked[f.start : f.end] for f in scanner.find(masked)]
        assert leaked == [], masked
        for value in masker.originals.values():
            assert value not in masked
