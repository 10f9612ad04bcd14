"""Writes ``labelled.jsonl``, the PII evaluation set: ``python tests/data/pii/build_labelled.py``.

Each line is ``{"text", "pii": [{"label", "value"}], "note"}``; a value is labelled
wherever it occurs in the text. Sentences are written by hand around values written by
hand (published test cards and IBANs, fictional phone ranges) or built with their own
checksum code here (not the gateway's), and look-alikes that must not match. What
counts as each class: GUIDE.md beside this file. Deterministic: a fixed seed.
"""

# ruff: noqa: RUF001  (Chinese and Japanese text uses full-width punctuation)
from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

OUT = Path(__file__).with_name("labelled.jsonl")
rng = random.Random(11)


# ---- values ----------------------------------------------------------------------------------

EMAILS = [
    "jane.doe@example.com",
    "j.smith+billing@mail.example.co.uk",
    "zhang.wei@example.com.cn",
    "123456789@qq.com",
    "li_na-2021@163.com",
    "OPS@EXAMPLE.ORG",
    "m.muller@example.de",
    "support@sub.domain-name.io",
    "tanaka.hiroshi@example.co.jp",
    "a.b.c.d@example.net",
    "first.last@university.edu",
    "noreply+alerts@status.example.app",
    "maria.garcia@correo.example.es",
    "x@y.fr",
    "dev.team@startup.ai",
]
EMAILS_MISSED = ["josé.garcía@example.es", "用户@例子.中国"]  # non-ASCII: outside the recognizer

PHONES_US = [
    "(415) 555-2671",
    "415-555-2671",
    "415.555.2671",
    "+1 415 555 2671",
    "+1-646-872-3190",
    "(212) 736-5000",
    "646 872 3190",
    "+1 (312) 555-0188",
    "6468723190",
]
PHONES_INTL = [
    "+44 20 7946 0958",
    "+44 7911 123456",
    "+86 138 0013 8000",
    "+86-10-6552-9988",
    "+8613912345678",
    "+49 30 901820",
    "+49 151 23456789",
    "+33 1 42 68 53 00",
    "+33 6 12 34 56 78",
    "+81 3-3224-9999",
    "+61 2 9374 4000",
    "+91 98765 43210",
    "+55 11 91234-5678",
    "+34 912 34 56 78",
    "+82 2-312-3456",
]
PHONES_NATIONAL_ELSEWHERE = ["020 7946 0958", "13800138000", "030 901820", "03-3224-9999"]


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body + "0")):
        d = int(ch)
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


CARDS_PUBLISHED = [  # processors' published test numbers
    "4111111111111111",
    "4012888888881881",
    "4242424242424242",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "6200000000000005",
    "36227206271667",
    "30569309025904",
]
CARDS_BUILT = [
    luhn_complete(p + "".join(rng.choice(string.digits) for _ in range(n)))
    for p, n in [("4539", 11), ("5425", 11), ("6250", 11), ("4916", 11), ("5200", 11)]
]


def card_format(number: str, style: int) -> str:
    if style == 0:
        return number
    sep = " " if style == 1 else "-"
    if len(number) == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


IBANS = [  # SWIFT registry and banks' published examples
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "CH9300762011623852957",
    "AT611904300234573201",
    "PL61109010140000071219812874",
    "SE4550000000058398257466",
    "NO9386011117947",
    "DK5000400440116243",
    "IE29AIBK93115212345678",
    "PT50000201231234567890154",
    "SA0380000000608010167519",
    "AE070331234567890123456",
    "TR330006100519786457841326",
]


def iban_spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


IPV4 = [
    "203.0.113.42",
    "198.51.100.7",
    "192.168.1.20",
    "10.0.0.5",
    "8.8.8.8",
    "172.16.254.1",
    "100.64.12.9",
]
IPV6 = [
    "2001:db8::1",
    "fe80::1ff:fe23:4567:890a",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2606:4700:4700::1111",
]

CN_AREAS = ["110105", "310115", "440305", "510104", "330106", "420102", "610113", "370202"]
CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id(area: str, birth: str, seq: str) -> str:
    body = area + birth + seq
    total = sum(int(d) * w for d, w in zip(body, CN_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


CN_IDS = ["11010519491231002X"] + [
    cn_id(
        area,
        f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        f"{rng.randint(0, 999):03d}",
    )
    for area in CN_AREAS * 2
]
SSNS = [
    "536-22-1409",
    "219-09-9999",
    "401-56-7823",
    "123-45-6789",
    "772-10-3456",
    "305-48-1190",
    "612-03-7741",
    "048-62-5310",
    "233-91-0467",
]
PASSPORTS = [
    "531234567",
    "X12345678",
    "E12345678",
    "C01X00T47",
    "12AB34567",
    "PAA123456",
    "G28233519",
    "A1234567",
]


def token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def jwt(alg: str, claims: dict[str, object]) -> str:
    signature = token(43, string.ascii_letters + string.digits + "-_")
    return f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(claims)}.{signature}"


SECRETS = {
    "er": ["er-" + token(43, string.ascii_letters + string.digits + "-_") for _ in range(4)],
    "sk": [
        "sk-proj-" + token(48),
        "sk-" + token(48),
        "sk-ant-api03-" + token(60, string.ascii_letters + string.digits + "-_"),
    ],
    "akid": ["AKIA" + token(16, string.ascii_uppercase + string.digits) for _ in range(5)]
    + ["ASIA" + token(16, string.ascii_uppercase + string.digits)],
    "aws_secret": [token(40, string.ascii_letters + string.digits + "/+") for _ in range(4)],
    "jwt": [
        jwt("HS256", {"sub": "1234567890", "name": "John"}),
        jwt("RS256", {"iss": "https://idp.example.com", "exp": 1900000000}),
        jwt("ES256", {"sub": "u_42"}),
    ],
    "generic": [
        token(32, "0123456789abcdef"),
        token(24),
        token(40, string.ascii_letters + string.digits + "_-"),
        token(32),
        token(20),
    ],
}


# ---- sentences -------------------------------------------------------------------------------

rows: list[dict[str, object]] = []


def add(text: str, *pii: tuple[str, str], note: str = "") -> None:
    for _, value in pii:
        assert value in text, (value, text)
    rows.append({"text": text, "pii": [{"label": lab, "value": v} for lab, v in pii], "note": note})


email_templates = [
    "Please send the invoice to {} before Friday.",
    "My email is {}, reach me there.",
    "联系邮箱：{}，工作日回复。",
    "Contact: <{}>",
    "mailto:{}",
    "Bitte schreiben Sie an {} für Rückfragen.",
    "Reply-To: {}\nSubject: refund",
    "Envoyez vos questions à {}.",
    "cc {} and me on the thread",
    "请把报告发到{}谢谢",
]
for i, email in enumerate(EMAILS * 2):
    add(
        email_templates[(i + i // len(EMAILS)) % len(email_templates)].format(email),
        ("email", email),
        note="email",
    )
for a, b in [(EMAILS[0], EMAILS[1]), (EMAILS[2], EMAILS[3]), (EMAILS[5], EMAILS[9])]:
    add(f"Forward from {a} to {b}, then reply to {a}.", ("email", a), ("email", b), note="emails")
for email in EMAILS_MISSED:
    add(f"Correo: {email}", ("email", email), note="non-ASCII email")

phone_templates = [
    "Call me at {} after 6pm.",
    "Phone: {}",
    "客户电话 {}，请回电。",
    "You can reach the front desk on {}.",
    "Tel. {} (office)",
    "Rufen Sie uns an: {}",
    "WhatsApp {} anytime",
    "緊急連絡先：{}",
]
for i, phone in enumerate((PHONES_US + PHONES_INTL) * 2):
    add(
        phone_templates[(i + i // 24) % len(phone_templates)].format(phone),
        ("phone", phone),
        note="phone",
    )
for phone in PHONES_NATIONAL_ELSEWHERE:
    add(
        f"我的手机号是{phone}，有事打给我。"
        if phone.startswith("138")
        else f"Office line {phone}.",
        ("phone", phone),
        note="national format of a region other than the default",
    )
add(
    "Main (212) 736-5000, fax (212) 736-5001.",
    ("phone", "(212) 736-5000"),
    ("phone", "(212) 736-5001"),
    note="phones",
)

card_templates = [
    "Charge card {} for the renewal.",
    "My card number is {} exp 09/28 cvv 123",
    "卡号 {}，有效期 12/27。",
    "Kartennummer: {}",
    "paid with {} yesterday",
]
for i, number in enumerate((CARDS_PUBLISHED + CARDS_BUILT) * 2):
    shown = card_format(number, (i + i // 20) % 3)
    add(card_templates[i % len(card_templates)].format(shown), ("card", shown), note="card")

iban_templates = [
    "Please wire the deposit to IBAN {}.",
    "Bankverbindung: {} (Sparkasse)",
    "RIB / IBAN : {}",
    "收款账户 IBAN：{}",
    "Transfer to {} reference INV-2291",
]
for i, iban in enumerate(IBANS * 2):
    shown = iban_spaced(iban) if (i + i // len(IBANS)) % 2 else iban
    add(iban_templates[i % len(iban_templates)].format(shown), ("iban", shown), note="iban")
add(
    "iban de89 3704 0044 0532 0130 00",
    ("iban", "de89 3704 0044 0532 0130 00"),
    note="lower-case iban",
)

ip_templates = [
    "The login came from {} at 03:12.",
    "ssh admin@{} -p 22",
    "服务器地址 {}，端口 8080。",
    "Blocked {} after 5 failed attempts",
    "curl http://{}:8080/health",
]
for i, ip in enumerate(IPV4 * 2):
    add(ip_templates[i % len(ip_templates)].format(ip), ("ip_address", ip), note="ipv4")
for i, ip in enumerate(IPV6 * 2):
    add(
        f"Client address {ip} was rate limited." if i % 2 else f"AAAA record: {ip}",
        ("ip_address", ip),
        note="ipv6",
    )
add(
    "listen on [2001:db8::8]:443 and 198.51.100.23",
    ("ip_address", "2001:db8::8"),
    ("ip_address", "198.51.100.23"),
    note="ips",
)
add(
    "mapped ::ffff:192.0.2.128 in the log",
    ("ip_address", "::ffff:192.0.2.128"),
    note="ipv4-mapped ipv6",
)

cn_templates = [
    "身份证号：{}",
    "本人身份证号码为{}，特此声明。",
    "ID card {} (PRC)",
    "请核对证件号码 {} 是否正确",
]
for i, number in enumerate(CN_IDS):
    shown = number.lower() if number.endswith("X") and i % 2 else number
    add(
        cn_templates[i % len(cn_templates)].format(shown),
        ("cn_resident_id", shown),
        note="cn resident id",
    )

for i, ssn in enumerate(SSNS):
    add(
        ["SSN: {}", "My social security number is {}.", "employee {} payroll"][i % 3].format(ssn),
        ("us_ssn", ssn),
        note="ssn",
    )
add("SSN 536 22 1409 on file", ("us_ssn", "536 22 1409"), note="spaced ssn")
add("ssn: 401567823", ("us_ssn", "401567823"), note="bare ssn with context")

passport_templates = [
    "Passport number: {}",
    "护照号码：{}",
    "Reisepass-Nr. {}",
    "N° de passeport {}",
    "pasaporte {} válido hasta 2031",
    "passport no {} issued in London",
]
for i, number in enumerate(PASSPORTS * 2):
    add(
        passport_templates[(i + i // len(PASSPORTS)) % len(passport_templates)].format(number),
        ("passport", number),
        note="passport",
    )
add(
    "travel document X87654321 for the visa",
    ("passport", "X87654321"),
    note="passport without a context word",
)

for key in SECRETS["er"]:
    add(
        f"curl -H 'Authorization: Bearer {key}' https://gw.example.com/v1/models",
        ("secret", key),
        note="edgeroute key",
    )
for key in SECRETS["sk"]:
    add(f"OPENAI_API_KEY={key}", ("secret", key), note="sk- key")
for key in SECRETS["akid"]:
    add(f"aws_access_key_id = {key}", ("secret", key), note="aws access key id")
for secret in SECRETS["aws_secret"]:
    add(f"aws_secret_access_key = {secret}", ("secret", secret), note="aws secret key")
for t in SECRETS["jwt"]:
    add(f"the token was {t} and it expired", ("secret", t), note="jwt")
for i, value in enumerate(SECRETS["generic"]):
    form = [
        f'{{"api_key": "{value}"}}',
        f"token: {value}",
        f"client_secret={value}",
        f"Authorization: Bearer {value}",
        f"password = '{value}'",
    ][i]
    add(form, ("secret", value), note="generic secret")
ghp = "ghp_" + token(36)
add(
    f"git remote set-url origin https://{ghp}@github.com/acme/app",
    ("secret", ghp),
    note="github token",
)
xoxb = "xoxb-" + token(12, string.digits) + "-" + token(24)
add(f"SLACK_BOT_TOKEN {xoxb}", ("secret", xoxb), note="slack token")

# Several classes in one text.
add(
    f"Name: Li Lei, 电话 +86 138 0013 8000, 邮箱 {EMAILS[2]}, 身份证 {CN_IDS[1]}",
    ("phone", "+86 138 0013 8000"),
    ("email", EMAILS[2]),
    ("cn_resident_id", CN_IDS[1]),
    note="mixed",
)
add(
    f"Customer {EMAILS[0]} paid with {card_format(CARDS_PUBLISHED[0], 1)} from {IPV4[0]}; "
    "call (415) 555-2671.",
    ("email", EMAILS[0]),
    ("card", card_format(CARDS_PUBLISHED[0], 1)),
    ("ip_address", IPV4[0]),
    ("phone", "(415) 555-2671"),
    note="mixed",
)
add(
    f"Refund to {iban_spaced(IBANS[0])}, SSN {SSNS[0]}, key {SECRETS['akid'][0]}",
    ("iban", iban_spaced(IBANS[0])),
    ("us_ssn", SSNS[0]),
    ("secret", SECRETS["akid"][0]),
    note="mixed",
)

# CSV-like records: several values per line.
NAMES = ["Ana Lima", "Wang Fang", "Tom Baker", "Jonas Weber", "Chloé Martin", "Sato Yui"]
for i in range(12):
    email, phone, ip = EMAILS[i], PHONES_INTL[i], IPV4[i % len(IPV4)]
    add(
        f"{NAMES[i % len(NAMES)]},{email},{phone},{ip},2024-0{i % 9 + 1}-1{i % 10}",
        ("email", email),
        ("phone", phone),
        ("ip_address", ip),
        note="record",
    )

# ---- look-alikes: nothing here may match --------------------------------------------------------

NEGATIVES = [
    ("Order #4155552671 shipped today.", "order number that is a valid US phone"),
    ("Your order number is 112-3456789-1234567.", "marketplace order number"),
    ("订单号 20240115001，共 3 件，合计 1288 元。", "chinese order number"),
    ("订单编号：13800138000", "chinese order number shaped like a mobile"),
    ("Invoice INV-2024-000871 is due on 2024-03-31.", "invoice number and date"),
    ("Tracking: 1Z999AA10123456784", "UPS tracking"),
    ("USPS tracking 9400 1000 0000 0000 0000 00", "USPS tracking"),
    ("FedEx tracking number 7712 3456 7890", "FedEx tracking"),
    ("Released on 2024-01-15 12:30:45 UTC.", "timestamp"),
    ("Meeting 15/01/2024 at 14:30, room 4.12.", "date and room"),
    ("2023年12月31日 23:59:59 截止", "chinese date"),
    ("epoch 1712345678 ms 1712345678123", "unix timestamps"),
    ("Upgrade to version 1.2.3.4 or v10.0.19041.", "version strings"),
    ("Python 3.11.4, numpy 1.26.0, CUDA 12.1.105", "versions"),
    ("ISBN 978-0-306-40615-7 and ISBN-10 0-306-40615-2", "ISBNs"),
    ("ISBN 9780306406157", "bare ISBN-13"),
    ("Product code SKU-2023-00871-B, model 415-555-2671X", "product codes"),
    ("Part no. 800-555-0199-A rev 3", "part number shaped like a phone"),
    ("4111111111111112 is a typo, not a card", "16 digits, Luhn fails"),
    ("Reference 1234567812345678", "16 digits, not a network prefix"),
    ("batch 9876543210987654 finished", "16 digits"),
    ("serial 0000 1111 2222 3333", "grouped digits"),
    ("request id 550e8400-e29b-41d4-a716-446655440000", "UUID"),
    ("trace 3f2504e0-4f89-11d3-9a0c-0305e82c3301", "UUID"),
    ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8", "git hash"),
    ("fixed in a1b2c3d, see 5e8f3c1", "short git hashes"),
    ("sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "digest"),
    ("Use icon@2x.png and logo@3x.jpg for retina.", "image names with @"),
    ("npm install react@18.2.0 lodash@4.17.21", "package versions with @"),
    ("ping 127.0.0.1 and bind 0.0.0.0", "loopback and unspecified"),
    ("netmask 255.255.255.0, route metric 100", "netmask"),
    ("OID 1.3.6.1.4.1.311 in the certificate", "OID"),
    ("std::vector<int> v; at 12:30:45 it crashed", "C++ and time"),
    ("MAC 00:1A:2B:3C:4D:5E on eth0", "MAC address"),
    ("000-12-3456 and 666-12-3456 are never issued", "invalid SSNs"),
    ("The passport photo must be 35x45 mm.", "passport context without a number"),
    ("Passport expires 2030-05-01; renewal fee 130 USD.", "passport context, date"),
    ("passport valid until 20310101", "passport context, compact date"),
    ("token: this_is_just_a_long_variable_name", "token context, a word"),
    ("password: hunter2", "short password"),
    ("We use sk-learn and scikit-learn 1.4.", "sk- that is a library"),
    ("Set api_key= in the config file.", "api_key without a value"),
    ("pay 1,234,567.89 USD to account 12-3456-7890123-00", "amounts and NZ-style account"),
    ("第3季度营收 12345678 元，同比增长 15.6%。", "chinese revenue figure"),
    ("北京市朝阳区建国路 88 号 SOHO 现代城 5 号楼 1203 室", "chinese address numbers"),
    ("编号 110105194912310021 的档案", "18 digits, CN checksum fails"),
    ("流水号 440305199913451234", "18 digits, bad date"),
    ("Coordinates 37.7749, -122.4194", "coordinates"),
    ("Price list: 19.99, 29.99, 49.99", "prices"),
    ("room 1203, floor 12, building 5", "numbers in prose"),
    ("ORA-00942: table or view does not exist", "error code"),
    ("HTTP/1.1 200 OK Content-Length: 348211", "http"),
    ("Build 20240115.3 passed 1532 of 1532 tests", "build number"),
    ("Zip 94103-1234, PO Box 5567", "zip+4"),
    ("GTIN 00012345600012 on the label", "GTIN-14"),
    ("IMEI 490154203237518", "IMEI (Luhn, but not a card prefix)"),
    ("ASIN B08N5WRWNW, Amazon", "ASIN"),
    ("VIN 1HGCM82633A004352", "VIN"),
    ("Line 4155 of main.py: x = 5552671", "code numbers"),
    ("matrix [[1, 2], [3, 4]] and tuple (415, 555, 2671)", "code literals"),
    ("Error at 0x7ffee4b2c8a0 in libfoo.so", "memory address"),
    ("colour #FF5733 and rgba(255, 87, 51, 0.5)", "colours"),
    ('jwt header eyJ is how base64 of {" starts', "eyJ prose"),
    ("ghp_ prefixes mark GitHub tokens", "token prefix prose"),
    ("AKIA is the prefix of AWS access key ids", "AKIA prose"),
    ("The IBAN format is CCkk BBBB ...", "IBAN prose"),
    ("DE12 is not an IBAN", "IBAN-like fragment"),
    ("GB00 WEST 1234 5698 7654 32", "IBAN with a bad checksum"),
    ("FR76 3000 6000 0112 3456 7890 188", "IBAN with a bad checksum"),
    ("Chapter 7.3.2.1 explains it", "section numbers"),
    ("ratio 3:2:1 and score 21:19", "ratios"),
    ("第一季度 1.2.3 版本发布", "chinese version"),
    ("Q3 2024: 1,024 users, 99.95% uptime", "stats"),
    ("Table 4155 rows x 5552 columns", "numbers"),
    ("seed 42, epochs 100, lr 0.0003, batch 4096", "hyperparameters"),
    ("The answer is 12345678901234567890.", "20 digits"),
]
for text, note in NEGATIVES:
    add(text, note=note)

with OUT.open("w", encoding="utf-8") as out:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
spans = sum(len(r["pii"]) for r in rows if isinstance(r["pii"], list))
print(f"{len(rows)} texts, {spans} spans -> {OUT}")
