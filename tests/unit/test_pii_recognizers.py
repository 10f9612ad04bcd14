"""The PII recognizers: each class found in its common formats, the look-alikes beside
them left alone, and the work linear in the text (a megabyte of hostile text is fast)."""

from __future__ import annotations

import time

import pytest

from edgeroute.privacy.checks import is_card, is_cn_resident_id, is_iban, luhn
from edgeroute.privacy.recognizers import Scanner, find


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (
            "write to jane.doe+news@mail.example.co.uk today",
            "email",
            "jane.doe+news@mail.example.co.uk",
        ),
        ("联系邮箱zhang.wei@example.cn谢谢", "email", "zhang.wei@example.cn"),
        ("call (415) 555-2671 now", "phone", "(415) 555-2671"),
        ("London: +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
        ("手机 +86 138 0013 8000", "phone", "+86 138 0013 8000"),
        ("Paris +33 1 23 45 67 89", "phone", "+33 1 23 45 67 89"),
        ("card 4111 1111 1111 1111 exp 12/29", "card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "card", "3782-822463-10005"),
        ("pay to DE89 3704 0044 0532 0130 00", "iban", "DE89 3704 0044 0532 0130 00"),
        ("IBAN GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("from 203.0.113.42 at noon", "ip_address", "203.0.113.42"),
        ("host 2001:db8:85a3::8a2e:370:7334 down", "ip_address", "2001:db8:85a3::8a2e:370:7334"),
        ("身份证号11010519491231002X", "cn_resident_id", "11010519491231002X"),
        ("SSN 123-45-6789", "us_ssn", "123-45-6789"),
        ("my ssn is 123456789", "us_ssn", "123456789"),
        ("Passport No: X12345678", "passport", "X12345678"),
        ("护照号码\uff1aE12345678", "passport", "E12345678"),  # a full-width colon
        ("key AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
        (
            "OPENAI_API_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12",
            "secret",
            "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12",
        ),
        (
            '"api_key": "f3a9c2e17b5d48a09e6c1d2b3a4f5e6d"',
            "secret",
            "f3a9c2e17b5d48a09e6c1d2b3a4f5e6d",
        ),
    ],
)
def test_each_class_is_found(text: str, kind: str, value: str) -> None:
    assert (kind, value) in found(text)


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


def test_a_jwt_needs_a_header_with_alg() -> None:
    assert found(f"Authorization: Bearer {JWT}") == [("secret", JWT)]
    not_a_header = "eyJub3RoaW5nIjoxfQ.eyJzdWIiOiIxIn0.abc"  # {"nothing":1}: no alg
    assert found(f"see {not_a_header}") == []


@pytest.mark.parametrize(
    "text",
    [
        "Order #4155552671 shipped",  # a valid US number, but an order number
        "tracking 1Z999AA10123456784",
        "released on 2024-01-15 12:30:45 UTC",
        "upgrade to version 1.2.3.4 or v10.0.19041",
        "ISBN 978-0-306-40615-7",
        "订单号 20240115001\uff0c共 3 件\uff0c合计 1288 元",
        "SKU-2023-00871-B",
        "4111111111111112 is not a card",  # Luhn fails
        "id 550e8400-e29b-41d4-a716-446655440000",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "icon@2x.png",
        "netmask 255.255.255.0 on 127.0.0.1",
        "std::vector<int> at 12:30:45",
        "000-12-3456 and 666-12-3456 are never issued",
        "token: this_is_just_a_long_variable_name",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert luhn("79927398713") and not luhn("79927398710")
    assert is_card("4111111111111111") and not is_card("1234567812345670")  # no such network
    assert is_iban("GB82WEST12345698765432") and not is_iban("GB82WEST12345698765433")
    assert not is_iban("XX82WEST12345698765432")
    assert is_cn_resident_id("11010519491231002X")
    assert not is_cn_resident_id("110105194912310021")  # check digit
    assert not is_cn_resident_id("110105194913310024")  # month 13


def test_overlaps_go_to_the_higher_class() -> None:
    # An email whose local part holds a phone-shaped run is one email.
    assert found("mail 4155552671@example.com") == [("email", "4155552671@example.com")]


def test_phone_lookups_are_budgeted_and_then_mask_rather_than_leak() -> None:
    scanner = Scanner("US", phone_lookups=2)
    text = "(415) 555-2671, (415) 555-2672, 1234567"
    kinds = [(f.kind, text[f.start : f.end]) for f in scanner.find(text)]
    # the third is not a valid number, but the budget is spent: it counts as a phone
    assert kinds == [("phone", "(415) 555-2671"), ("phone", "(415) 555-2672"), ("phone", "1234567")]


ADVERSARIAL = {
    "letters": "a" * 1_000_000,
    "digits": "1" * 1_000_000,
    "spaced digits": "1 " * 500_000,
    "ats": "a@" * 500_000,
    "colons": "a:" * 500_000,
    "jwt starts": (" eyJ" + "a" * 50 + ".") * 18_000,
    "context words": ("token: " + "a1" * 10 + " ") * 36_000,
    "seven digits": "1234567 a " * 100_000,
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_megabyte_of_hostile_text_is_linear(name: str) -> None:
    started = time.perf_counter()
    find(ADVERSARIAL[name])
    # ~1 s on one shared core; quadratic backtracking would take hours
    assert time.perf_counter() - started < 10
