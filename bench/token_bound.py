"""Token reservations against SmolLM2's real tokenizer: the ratio of what admission
reserves for a prompt (``wire/tokens.bound_prompt_tokens``) and of the old central
estimate (``estimate_prompt_tokens``) to the true count, per prompt set.

The true count is llama.cpp's: the prompt rendered by the model's chat template
(``/apply-template``) and tokenized (``/tokenize``), which is the ``prompt_tokens`` its
chat completions report. Prompts: the labelled ShareGPT first turns and the written
prompts in English, German, Spanish, French, Chinese and Japanese."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
LABELLED = REPO / "edge_models" / "data" / "labelled"


def _prompts() -> list[tuple[str, str]]:
    from edgeroute.tools import sharegpt

    turns = sharegpt.first_turns()
    ids = [json.loads(line)["id"] for line in (LABELLED / "sharegpt.jsonl").open()]
    out = [("ShareGPT", turns[i]) for i in ids if i in turns]
    for path in sorted(LABELLED.glob("written*-*.jsonl")):
        group = "zh+ja" if path.stem.endswith(("-zh", "-ja")) else "en/de/es/fr"
        out += [(group, json.loads(line)["prompt"]) for line in path.open()]
    return out


def _true_counts(prompts: list[tuple[str, str]]) -> list[int]:
    from edgeroute.tools import llama

    proc, url = llama.start()
    base = url.removesuffix("/v1")
    try:
        with httpx.Client(timeout=60) as client:
            counts = []
            for _, text in prompts:
                messages = [{"role": "user", "content": text}]
                rendered = client.post(base + "/apply-template", json={"messages": messages})
                tokens = client.post(
                    base + "/tokenize",
                    json={"content": rendered.json()["prompt"], "parse_special": True},
                )
                counts.append(len(tokens.json()["tokens"]))
            return counts
    finally:
        llama.stop(proc)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    from edgeroute.wire.tokens import bound_prompt_tokens, estimate_prompt_tokens

    prompts = _prompts()
    true = _true_counts(prompts)
    counters: dict[str, Callable[[list[Any]], int]] = {
        "bound (reserved)": bound_prompt_tokens,
        "old estimate": estimate_prompt_tokens,
    }
    out: dict[str, Any] = {}
    for name, count in counters.items():
        groups: dict[str, list[float]] = {}
        for (group, text), n in zip(prompts, true, strict=True):
            ratio = count([{"role": "user", "content": text}]) / n
            groups.setdefault(group, []).append(ratio)
            groups.setdefault("all", []).append(ratio)
        out[name] = {
            group: {
                "prompts": len(r),
                "min": round(min(r), 3),
                "median": round(statistics.median(r), 2),
                "p99": round(_quantile(r, 0.99), 2),
                "under_true": sum(x < 1 for x in r),
            }
            for group, r in groups.items()
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
