"""Edge models on one thread: embedding latency at 32 and 256 tokens, batch-32
throughput, classification end to end (64 tokens, a long pasted prompt, adversarial
inputs up to the body limit), cold start, resident memory, and the unzipped size of what
the edge needs at run time (runtime packages plus model files)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from edgeroute.settings import EmbedBatching

RUNS = int(os.environ.get("BENCH_RUNS", "300"))
BODY_CHARS = 5_500_000  # about the 6 MB body limit
ADVERSARIAL = {
    "one_long_word": "a" * BODY_CHARS,
    "nested_brackets": "(" * (BODY_CHARS // 2) + ")" * (BODY_CHARS // 2),
    "newlines": "\n" * BODY_CHARS,
    "mixed_scripts": "中文 text ñ ü 日本語 ({[ " * (BODY_CHARS // 20),
}
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "5"))
_COLD = """
import time, resource
t0 = time.perf_counter()
from edgeroute.edge import classifier
classifier.classify({"messages": [{"role": "user", "content": "hello there, how are you?"}]})
t1 = time.perf_counter()
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
print(round((t1 - t0) * 1000, 1), rss)
"""


def _text_of(tokens: int) -> str:
    from edgeroute.edge import embedder

    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "near",
        "the",
        "river",
        "bank",
        "today",
    ]
    text = " ".join(words[i % len(words)] for i in range(tokens))
    while len(embedder.pieces([text])[0]) > tokens:
        text = text.rsplit(" ", 1)[0]
    return text


def _timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(runs * 0.99) - 1], 3),
    }


def _size_mb(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(f.stat().st_size for f in files if "__pycache__" not in f.parts)
    return round(total / 1e6, 1)


def main() -> None:
    # Unconfigured, the edge models run on one thread, one inference per input.
    from edgeroute.edge import classifier, embedder, models

    classifier.warm()
    results: dict[str, object] = {}
    for tokens in (32, 256):
        text = _text_of(tokens)
        results[f"embed_{tokens}_tokens"] = _timed(partial(embedder.embed, [text]), RUNS)
    batch = [f"sentence number {i} about routing requests to models" for i in range(32)]
    modes: tuple[EmbedBatching, ...] = ("per-input", "batched")
    for mode in modes:
        models.configure(None, 1, mode)
        t0 = time.perf_counter()
        for _ in range(20):
            embedder.embed(batch)
        results[f"batch32_{mode}_texts_per_s"] = round(20 * 32 / (time.perf_counter() - t0), 1)
    models.configure(None, 1)

    def classify_timed(text: str, runs: int) -> dict[str, float]:
        payload = {"messages": [{"role": "user", "content": text}]}
        return _timed(lambda: classifier.classify(payload), runs)

    results["classify_64_tokens"] = classify_timed(_text_of(64), RUNS)
    pasted = "Summarise the risks in this contract for me.\n" + "The supplier shall. " * 1500
    results["classify_30kb_pasted_prompt"] = classify_timed(pasted, RUNS)
    for name, text in ADVERSARIAL.items():
        results[f"classify_adversarial_{name}"] = classify_timed(text, max(RUNS // 10, 20))
    cold = []
    rss = []
    for _ in range(COLD_RUNS):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _COLD], capture_output=True, text=True, check=True
        )
        wall = (time.perf_counter() - start) * 1000
        inside, mem = out.stdout.split()
        cold.append((wall, float(inside)))
        rss.append(int(mem))
    results["cold_start_process_to_answer_ms_median"] = round(
        statistics.median(c[0] for c in cold), 1
    )
    results["cold_start_imports_and_sessions_ms_median"] = round(
        statistics.median(c[1] for c in cold), 1
    )
    results["resident_mb_after_first_answer"] = statistics.median(rss)
    site = Path(embedder.__file__).parents[3] / ".venv" / "lib"
    site_packages = next(site.glob("python3*/site-packages"), None)
    if site_packages is not None:
        names = [
            "onnxruntime",
            "numpy",
            "numpy.libs",
            "sentencepiece",
            "sentencepiece.libs",
            "py3langid",
        ]
        results["runtime_packages_mb"] = _size_mb(
            [site_packages / n for n in names if (site_packages / n).exists()]
        )
    model_files = [
        p
        for name in ("use-multilingual", "routing", "moderation")
        for p in (models.models_dir() / name).iterdir()
        if p.name in ("model.onnx", "spm.model", "heads.npz", "labels.json")
    ]
    results["model_files_mb"] = _size_mb(model_files)
    print(json.dumps(results, indent=2))
