"""Train the request task classifier on INT8 MiniLM embeddings and export it to ONNX.

Why: the gateway routes by task type (chat, code, math, summarize, translate, extract,
classify, qa, creative). A linear head on what the gateway already computes for the
embedder costs microseconds: the 384-d sentence embedding plus a bag of the WordPiece ids
fed to the embedder. The bag matters for non-English prompts: all-MiniLM-L6-v2 embeds them
poorly (they cluster by script, not by task), while cue tokens such as "переведи", "翻译" or
"resume" still carry the task. On the first training batch, 5-fold CV went from 0.72
(embedding only) to 0.77 with the bag; the build re-runs that comparison every time.

The head is a scikit-learn multinomial LogisticRegression on [embedding, weight * bag]. It
is written to ONNX with onnx.helper (skl2onnx has no converter for a bag of token ids
computed in-graph): logits = embedding @ W_e + mean_t(V[input_ids_t] over attention_mask)
+ b, checked against ``predict_proba`` at build time.

Data: the hand-written prompts in ``edge_models/data/prompts/*.jsonl`` (first batch: one
file per task; second batch: ``batch2_multilingual.jsonl``; third batch:
``batch3_varied.jsonl``, written in the style of real chat-API traffic after the model scored
far lower on an independent set than on its own held-out file). Model selection uses 5-fold
stratified cross-validation on those prompts only. Two held-out files, never used for
training or selection, give the reported accuracy: ``edge_models/data/eval/heldout.jsonl``
(written after the first batch) and ``heldout2.jsonl`` (written with the third batch, in its
varied style). The card's accuracy floor is the lower of the two accuracies minus 0.03.
Both carry a tier label per prompt, used to check the complexity heuristic in
``complexity.py``.

Embeddings come from the shipped INT8 ``minilm-l6-v2/model.onnx`` (batch 1, no padding),
exactly as the runtime computes them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import scipy.sparse as sp
from common import (
    DATA_DIR,
    EDGE_MODELS,
    EMBEDDER_DIR,
    file_entry,
    heldout_prompts,
    machine_description,
    package_versions,
    percentile_ms,
    read_jsonl,
    single_thread_session,
    training_prompts,
    write_yaml,
)
from complexity import TASK_BASE, TIER_CUTOFFS, complexity_score, tier_for
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from tokenizers import Tokenizer

OUT_DIR = EDGE_MODELS / "task-classifier"
REPORT_PATH = EDGE_MODELS / "eval" / "task-classifier.md"
HELDOUT2_PATH = DATA_DIR / "eval" / "heldout2.jsonl"
HELDOUT_FILES = ("heldout.jsonl", "heldout2.jsonl")
LABELS = ("chat", "code", "math", "summarize", "translate", "extract", "classify", "qa", "creative")
SEED = 0
FLOOR_MARGIN = 0.03
COMPLEXITY_EXAMPLES = (
    ("hi", "chat"),
    ("translate 'good morning' to french", "translate"),
    ("What is the capital of Australia?", "qa"),
    ("Write a Python function that checks if a string is a palindrome", "code"),
    (
        "Write a 1,000-word story in three timelines, each in a different narrative voice, "
        "with a recurring object tying them together. Keep it under 1,000 words and avoid "
        "cliches.",
        "creative",
    ),
    ("Prove that there are infinitely many primes of the form 4k + 3.", "math"),
    (
        "Design a distributed rate limiter for 50 nodes with per-tenant limits; explain the "
        "consistency trade-offs and include pseudocode.",
        "code",
    ),
)


def candidates() -> dict[str, tuple[float, float]]:
    """(bag weight, C) pairs compared by cross-validation; weight 0 = embedding only."""
    return {
        f"logreg_bag{weight:g}_C{c_value:g}": (weight, c_value)
        for weight in (0.0, 3.0, 10.0, 20.0, 30.0)
        for c_value in (4.0, 16.0, 64.0)
    }


def make_head(c_value: float) -> LogisticRegression:
    """Multinomial logistic regression, classes balanced."""
    return LogisticRegression(C=c_value, max_iter=5000, class_weight="balanced", random_state=SEED)


def featurize(texts: list[str], model_dir: Path) -> tuple[np.ndarray, sp.csr_matrix, list[int]]:
    """INT8 embeddings, bag of WordPiece ids (mean over tokens) and untruncated token counts.

    The ids are the embedder's inputs (truncated at 256, [CLS]/[SEP] included), so the
    runtime reuses the arrays it already built.
    """
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    full_length = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    full_length.no_truncation()
    vocab_size = tokenizer.get_vocab_size()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    vectors: list[np.ndarray] = []
    counts: list[int] = []
    bag = sp.lil_matrix((len(texts), vocab_size), dtype=np.float32)
    for row, text in enumerate(texts):
        encoding = tokenizer.encode(text)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
        }
        vectors.append(session.run(["embeddings"], feeds)[0][0])
        counts.append(len(full_length.encode(text).ids))
        for token_id in encoding.ids:
            bag[row, token_id] += 1.0 / len(encoding.ids)
    return np.stack(vectors).astype(np.float32), bag.tocsr(), counts


def combine(vectors: np.ndarray, bag: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """[embedding, weight * bag] as one sparse design matrix."""
    return sp.hstack([sp.csr_matrix(vectors), bag * weight]).tocsr()


def per_class(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(LABELS))), zero_division=0
    )
    return {
        label: {
            "precision": round(float(precision[i]), 3),
            "recall": round(float(recall[i]), 3),
            "f1": round(float(f1[i]), 3),
            "support": int(support[i]),
        }
        for i, label in enumerate(LABELS)
    }


def export_onnx(head: LogisticRegression, weight: float, vocab_size: int, out_path: Path) -> None:
    """ONNX graph of the head: embedding + token-id bag in, label and probabilities out."""
    coef = head.coef_.astype(np.float32)  # [classes, 384 + vocab]
    w_embedding = np.ascontiguousarray(coef[:, :384].T)  # [384, classes]
    v_tokens = np.ascontiguousarray(coef[:, 384:].T * weight)  # [vocab, classes]
    if v_tokens.shape[0] != vocab_size:
        raise ValueError("vocabulary size mismatch")
    initializers = [
        numpy_helper.from_array(w_embedding, "w_embedding"),
        numpy_helper.from_array(v_tokens, "v_tokens"),
        numpy_helper.from_array(head.intercept_.astype(np.float32), "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis_2"),
    ]
    nodes = [
        helper.make_node("Gather", ["v_tokens", "input_ids"], ["token_logits"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis_2"], ["mask_3d"]),
        helper.make_node("Mul", ["token_logits", "mask_3d"], ["masked_logits"]),
        helper.make_node("ReduceSum", ["masked_logits", "axis_1"], ["bag_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis_1"], ["token_count"], keepdims=1),
        helper.make_node("Div", ["bag_sum", "token_count"], ["bag_logits"]),
        helper.make_node("MatMul", ["embedding", "w_embedding"], ["embedding_logits"]),
        helper.make_node("Add", ["embedding_logits", "bag_logits"], ["sum_logits"]),
        helper.make_node("Add", ["sum_logits", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    classes = len(LABELS)
    graph = helper.make_graph(
        nodes,
        "edgeroute_task_classifier",
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 384]),
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="edgeroute/edge_models/build/train_classifier.py",
        doc_string="edgeroute task classifier: labels in labels.json order",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    out_path.write_bytes(model.SerializeToString())


def onnx_predict(
    path: Path, vectors: np.ndarray, texts: list[str], tokenizer: Tokenizer
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Labels and probabilities from the exported graph, plus per-row latency samples."""
    session = single_thread_session(path)
    labels, probabilities, samples = [], [], []
    for row, text in zip(vectors, texts, strict=True):
        encoding = tokenizer.encode(text)
        feeds = {
            "embedding": row[None, :],
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
        }
        start = time.perf_counter()
        label, probs = session.run(["label", "probabilities"], feeds)
        samples.append(time.perf_counter() - start)
        labels.append(int(label[0]))
        probabilities.append(probs[0])
    return np.array(labels), np.stack(probabilities), samples


def complexity_check(rows: list[dict[str, Any]], tokens: list[int]) -> dict[str, Any]:
    """Agreement of the heuristic (with the true task) with the hand-labelled tiers."""
    order = {"small": 0, "medium": 1, "large": 2}
    scores = [
        complexity_score(row["text"], count, row["task"])
        for row, count in zip(rows, tokens, strict=True)
    ]
    tiers = [row["tier"] for row in rows]
    predicted = [tier_for(score) for score in scores]
    rho = spearmanr(scores, [order[tier] for tier in tiers]).statistic
    by_tier = {
        tier: {
            "count": tiers.count(tier),
            "mean_score": round(
                float(np.mean([s for s, t in zip(scores, tiers, strict=True) if t == tier])), 3
            ),
            "recall_of_cutoffs": round(
                float(
                    np.mean([p == t for p, t in zip(predicted, tiers, strict=True) if t == tier])
                ),
                3,
            ),
        }
        for tier in ("small", "medium", "large")
    }
    return {
        "spearman_vs_tier": round(float(rho), 3),
        "tier_accuracy_with_cutoffs": round(
            float(np.mean([p == t for p, t in zip(predicted, tiers, strict=True)])), 3
        ),
        "by_tier": by_tier,
    }


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Markdown confusion matrix, rows = truth, columns = prediction."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(LABELS))))
    header = "| true \\ predicted | " + " | ".join(LABELS) + " |"
    rule = "|---" * (len(LABELS) + 1) + "|"
    lines = [header, rule]
    for i, label in enumerate(LABELS):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in matrix[i]) + " |")
    return "\n".join(lines)


def evaluate(
    rows: list[dict[str, Any]],
    vectors: np.ndarray,
    bag: sp.csr_matrix,
    head: LogisticRegression,
    weight: float,
    model_path: Path,
    tokenizer: Tokenizer,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[str], list[float]]:
    """Accuracy of the exported graph on one held-out file, checked against scikit-learn."""
    index = {label: i for i, label in enumerate(LABELS)}
    texts = [row["text"] for row in rows]
    y_true = np.array([index[row["task"]] for row in rows])
    y_pred, probabilities, samples = onnx_predict(model_path, vectors, texts, tokenizer)
    sklearn_probabilities = head.predict_proba(combine(vectors, bag, weight))
    sklearn_pred = np.argmax(sklearn_probabilities, axis=1)
    _, _, macro_f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    ascii_mask = np.array([text.isascii() for text in texts])
    errors = [
        f"`{row['task']}` → `{LABELS[pred]}` (p={probabilities[i][pred]:.2f}): "
        + json.dumps(row["text"][:110], ensure_ascii=False)
        for i, (row, pred) in enumerate(zip(rows, y_pred, strict=True))
        if pred != index[row["task"]]
    ]
    summary = {
        "size": len(rows),
        "correct": int(np.sum(y_pred == y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(macro_f1), 4),
        "size_ascii": int(ascii_mask.sum()),
        "accuracy_ascii": round(float(np.mean(y_pred[ascii_mask] == y_true[ascii_mask])), 4),
        "size_non_ascii": int((~ascii_mask).sum()),
        "accuracy_non_ascii": round(float(np.mean(y_pred[~ascii_mask] == y_true[~ascii_mask])), 4),
        "per_class": per_class(y_true, y_pred),
        "onnx_vs_sklearn_label_agreement": round(float(np.mean(sklearn_pred == y_pred)), 4),
        "onnx_vs_sklearn_max_probability_gap": float(
            f"{float(np.max(np.abs(sklearn_probabilities - probabilities))):.2e}"
        ),
    }
    return summary, y_true, y_pred, errors, samples


def heldout_section(
    name: str, held: dict[str, Any], y_true: np.ndarray, y_pred: np.ndarray, errors: list[str]
) -> list[str]:
    """Report lines for one held-out file."""
    return [
        f"## Held-out accuracy: `{name}` (ONNX graph, INT8 embeddings)",
        "",
        f"**Accuracy: {held['accuracy']:.3f}** ({held['correct']}/{held['size']}); "
        f"macro F1 {held['macro_f1']:.3f}. Target was 0.90: "
        + ("met." if held["accuracy"] >= 0.90 else "**not met**."),
        "",
        f"ASCII-only prompts (English, romanised Hindi): {held['accuracy_ascii']:.3f} "
        f"({held['size_ascii']} prompts); non-ASCII prompts (other scripts and accented "
        f"languages): {held['accuracy_non_ascii']:.3f} ({held['size_non_ascii']} prompts).",
        "",
        "| task | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[
            f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
            f"{m['support']} |"
            for label, m in held["per_class"].items()
        ],
        "",
        "Confusion matrix (rows: true task, columns: predicted):",
        "",
        confusion_table(y_true, y_pred),
        "",
        f"Errors on `{name}`:",
        "",
        *[f"- {line}" for line in errors],
        "",
    ]


def write_report(results: dict[str, Any], sections: list[str]) -> None:
    """Markdown report with the numbers as measured."""
    held = results["heldout"]
    held2 = results["heldout2"]
    baseline = results["baseline_without_batch3"]
    agreement = min(h["onnx_vs_sklearn_label_agreement"] for h in (held, held2))
    gap = max(h["onnx_vs_sklearn_max_probability_gap"] for h in (held, held2))
    lines = [
        "# Task classifier: evaluation",
        "",
        "Generated by `edge_models/build/train_classifier.py`; every number below is from "
        "that run.",
        "",
        "## Data",
        "",
        f"- Training: {results['train_size']} hand-written prompts in "
        "`edge_models/data/prompts/*.jsonl`, in English, Spanish, German, French, Chinese, "
        "Japanese, Russian, Portuguese, Arabic, Hindi (Devanagari and romanised), Italian and "
        "Korean. Three authoring batches: one file per task (first), "
        "`batch2_multilingual.jsonl` (more non-English prompts), and "
        f"`batch3_varied.jsonl` ({results['batch3_size']} prompts).",
        "- `batch3_varied.jsonl` was written after the classifier (0.883 on `heldout.jsonl`) "
        "scored about 0.57 on the project's independent routing evaluation set: it overfitted "
        "the style of its own prompts. The third batch imitates chat-API traffic: fragments, "
        "no question marks, typos, lower case, long pasted context with the ask at the end, "
        "role-play and system-prompt preambles, mixed-language prompts, many domains, about "
        "45% non-English, with most effort on the qa / chat / creative, extract / summarize, "
        "classify / qa and math / qa boundaries. The routing evaluation set itself was not "
        "opened, read or used.",
        f"- Held-out 1: {held['size']} prompts in `edge_models/data/eval/heldout.jsonl`, "
        "written after the first batch. Not used for training nor for model selection.",
        f"- Held-out 2: {held2['size']} prompts in `edge_models/data/eval/heldout2.jsonl`, "
        "written together with the third batch in the same varied style (separately, not "
        "paraphrases of it). Not used for training nor for model selection.",
        "- Features: the 384-d embedding of the shipped INT8 `minilm-l6-v2/model.onnx` and a "
        "bag (mean) of the WordPiece ids fed to it.",
        "",
        "**How in-distribution these numbers are.** Both held-out files were written by the "
        "same author as the training prompts they accompany, and `heldout2.jsonl` shares the "
        "third batch's style, topics and languages. They measure generalisation to new "
        "wording within one author's idea of user traffic, not to traffic written by other "
        "people: the earlier model scored 0.88 here and about 0.57 on an independent set. "
        "Expect the independent figure to stay well below the ones below; re-measure on the "
        "routing evaluation set and on logged, labelled gateway traffic.",
        "",
        "## Effect of the third batch (same head settings, selected by CV below)",
        "",
        "| training data | heldout.jsonl | heldout2.jsonl |",
        "|---|---|---|",
        f"| first + second batch only ({baseline['train_size']} prompts) | "
        f"{baseline['heldout']:.3f} | {baseline['heldout2']:.3f} |",
        f"| all three batches ({results['train_size']} prompts) | {held['accuracy']:.3f} | "
        f"{held2['accuracy']:.3f} |",
        "",
        "(scikit-learn predictions with the chosen head settings.)",
        "",
        "## Model selection (5-fold stratified CV on the training prompts only)",
        "",
        "| head | CV accuracy |",
        "|---|---|",
        *[f"| {name} | {acc:.3f} |" for name, acc in results["cv_accuracy"].items()],
        "",
        "`bag<N>` is the weight N of the WordPiece-id bag next to the embedding (0 = embedding "
        "only); `C<N>` is the inverse regularisation strength. A one-hidden-layer MLP head "
        "(64 units, same features) was also tried by CV outside this script while preparing "
        "this run (0.868, against 0.869 for the best logistic regression then): no gain, so "
        "the linear head was kept and the ONNX graph is unchanged.",
        "",
        f"Chosen: **{results['chosen']}**, retrained on all training prompts and written to "
        "ONNX (checked against scikit-learn on both held-out files: label agreement "
        f"{agreement:.3f}, max probability gap {gap:.1e}).",
        "",
        f"Accuracy floor recorded in the card: {results['accuracy_floor']:.2f} (lower of the "
        "two held-out accuracies minus 0.03, rounded down; the acceptance test checks each "
        "file against it).",
        "",
        *sections,
        "## Complexity heuristic against hand-labelled tiers (both held-out files)",
        "",
        f"Spearman correlation of score vs tier (small < medium < large): "
        f"{results['complexity']['spearman_vs_tier']:.3f}; tier accuracy with cut-offs "
        f"{TIER_CUTOFFS}: {results['complexity']['tier_accuracy_with_cutoffs']:.3f}.",
        "",
        "| tier | prompts | mean score | share put in this tier |",
        "|---|---|---|---|",
        *[
            f"| {tier} | {v['count']} | {v['mean_score']:.3f} | {v['recall_of_cutoffs']:.3f} |"
            for tier, v in results["complexity"]["by_tier"].items()
        ],
        "",
        "The held-out tiers are one author's labels and skew to `small` (like real traffic); "
        "treat the score as a coarse ordering signal, not a calibrated tier predictor.",
        "",
        "## Limits",
        "",
        "- All prompts were written by one author: real traffic will have phrasings this set "
        "does not cover. Re-measure on logged, labelled gateway traffic when there is some.",
        '- Tasks overlap by nature ("explain this code" is code or qa; "summarize the gist" '
        "vs extract; advice-seeking chat vs qa). Labels follow the definitions in "
        "`edge_models/build/README.md`.",
        "- MiniLM-L6-v2 was trained mostly on English; non-English prompts are embedded less "
        "faithfully, which shows in the splits above.",
        "",
    ]
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    train_rows = training_prompts()
    held_sets = {"heldout.jsonl": heldout_prompts(), "heldout2.jsonl": read_jsonl(HELDOUT2_PATH)}
    index = {label: i for i, label in enumerate(LABELS)}
    train_texts = [row["text"] for row in train_rows]
    x_train, bag_train, _ = featurize(train_texts, EMBEDDER_DIR)
    y_train = np.array([index[row["task"]] for row in train_rows])
    held_features = {
        name: featurize([row["text"] for row in rows], EMBEDDER_DIR)
        for name, rows in held_sets.items()
    }

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    cv_accuracy: dict[str, float] = {}
    for name, (weight, c_value) in candidates().items():
        design = combine(x_train, bag_train, weight)
        predicted = cross_val_predict(make_head(c_value), design, y_train, cv=folds)
        cv_accuracy[name] = round(float(accuracy_score(y_train, predicted)), 4)
        print(f"cv {name}: {cv_accuracy[name]:.4f}")
    chosen = max(cv_accuracy, key=lambda name: cv_accuracy[name])
    weight, c_value = candidates()[chosen]
    head = make_head(c_value).fit(combine(x_train, bag_train, weight), y_train)

    # Same settings without the third batch, to show what it changed (not used for selection).
    earlier = np.array([row["source"] != "prompts/batch3_varied.jsonl" for row in train_rows])
    earlier_head = make_head(c_value).fit(
        combine(x_train[earlier], bag_train[earlier], weight), y_train[earlier]
    )
    baseline: dict[str, Any] = {"train_size": int(earlier.sum())}
    for name, rows in held_sets.items():
        vectors, bag, _ = held_features[name]
        y_true = np.array([index[row["task"]] for row in rows])
        pred = earlier_head.predict(combine(vectors, bag, weight))
        baseline[name.removesuffix(".jsonl")] = round(float(np.mean(pred == y_true)), 4)

    model_path = out_dir / "model.onnx"
    tokenizer = Tokenizer.from_file(str(EMBEDDER_DIR / "tokenizer.json"))
    export_onnx(head, weight, bag_train.shape[1], model_path)
    summaries: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    samples: list[float] = []
    for name, rows in held_sets.items():
        vectors, bag, _ = held_features[name]
        summary, y_true, y_pred, errors, timing = evaluate(
            rows, vectors, bag, head, weight, model_path, tokenizer
        )
        summaries[name] = summary
        sections += heldout_section(name, summary, y_true, y_pred, errors)
        samples += timing
    lowest = min(summary["accuracy"] for summary in summaries.values())
    floor = float(np.floor((lowest - FLOOR_MARGIN) * 100) / 100)
    all_held = [row for rows in held_sets.values() for row in rows]
    all_tokens = [count for name in held_sets for count in held_features[name][2]]
    results: dict[str, Any] = {
        "train_size": len(train_rows),
        "batch3_size": int((~earlier).sum()),
        "cv_accuracy": cv_accuracy,
        "chosen": chosen,
        "accuracy_floor": floor,
        "heldout": summaries["heldout.jsonl"],
        "heldout2": summaries["heldout2.jsonl"],
        "baseline_without_batch3": baseline,
        "complexity": complexity_check(all_held, all_tokens),
    }
    print(
        json.dumps(
            {
                k: ({kk: vv for kk, vv in v.items() if kk != "per_class"} if "heldout" in k else v)
                for k, v in results.items()
                if k != "cv_accuracy"
            },
            indent=1,
        )
    )
    write_report(results, sections)
    agreement = min(s["onnx_vs_sklearn_label_agreement"] for s in summaries.values())

    labels_path = out_dir / "labels.json"
    labels_path.write_text(json.dumps(list(LABELS)) + "\n", encoding="utf-8")
    tokenizer.no_truncation()
    examples = [
        {
            "text": text,
            "task": task,
            "tokens": len(tokenizer.encode(text).ids),
            "score": complexity_score(text, len(tokenizer.encode(text).ids), task),
        }
        for text, task in COMPLEXITY_EXAMPLES
    ]
    card = {
        "name": "task-classifier",
        "task": "request task type + complexity score",
        "labels": list(LABELS),
        "label_definitions": "edge_models/build/README.md#task-labels",
        "head": {
            "kind": "multinomial logistic regression on [embedding, bag_weight * token bag]",
            "selected_by_cv": chosen,
            "bag_weight": weight,
            "C": c_value,
            "graph": "logits = embedding @ w_embedding + masked mean over tokens of "
            "v_tokens[input_ids] + bias; probabilities = softmax(logits); label = argmax",
        },
        "licence": "Apache-2.0 (trained here on prompts written for edgeroute)",
        "input_from": "minilm-l6-v2: its `embeddings` output and the same input_ids / "
        "attention_mask arrays fed to it (tokenizer.json, truncation 256)",
        "inputs": {
            "embedding": "float32 [N, 384] (INT8 minilm-l6-v2 output)",
            "input_ids": "int64 [N, S] (same array as the embedder input)",
            "attention_mask": "int64 [N, S] (same array as the embedder input)",
        },
        "outputs": {
            "label": "int64 [N], index into labels.json",
            "probabilities": "float32 [N, 9], columns in labels.json order",
        },
        "files": {name: file_entry(out_dir / name) for name in ("model.onnx", "labels.json")},
        "training_data": {
            "prompts": len(train_rows),
            "files": "edge_models/data/prompts/*.jsonl",
            "per_task": {label: int(np.sum(y_train == i)) for i, label in enumerate(LABELS)},
            "batches": "first batch: one file per task; second batch "
            "(batch2_multilingual.jsonl): more non-English prompts for every task; third batch "
            "(batch3_varied.jsonl): prompts in the style of real chat-API traffic (fragments, "
            "typos, pasted context, role-play and system preambles, mixed languages, ~45% "
            "non-English), weighted to the confusable task boundaries",
            "packaged_sources": "none used (see README: they generalised poorly)",
        },
        "evaluation": {
            "report": "edge_models/eval/task-classifier.md",
            "heldout_files": [f"edge_models/data/eval/{name}" for name in HELDOUT_FILES],
            "cv_accuracy_5fold_training": cv_accuracy[chosen],
            "in_distribution_note": "both held-out files were written by the training "
            "prompts' author (heldout2 in the third batch's style); the previous model scored "
            "0.88 on heldout.jsonl but about 0.57 on an independent set written by someone "
            "else, so expect lower accuracy on real traffic",
            "heldout": results["heldout"],
            "heldout2": results["heldout2"],
            "without_batch3_same_head": baseline,
        },
        "accuracy_floor": floor,
        "accuracy_floor_rule": "lower of the two held-out accuracies (heldout.jsonl, "
        "heldout2.jsonl) at build minus 0.03, rounded down to two decimals; a test running the "
        "shipped models on each of the two files must reach it",
        "latency": {
            "head_only_p50_ms": percentile_ms(samples, 50),
            "head_only_p90_ms": percentile_ms(samples, 90),
            "method": "one row per run, intra_op_num_threads=1, embeddings of both held-out files",
            "machine": machine_description(),
        },
        "complexity": {
            "range": [0.0, 1.0],
            "reference_implementation": "edge_models/build/complexity.py",
            "definition": (
                "score = clip(task_base[task] + 0.30*length_term + 0.06*min(constraint_cues,4)"
                " + 0.20*min(hard_cues,2) + 0.08*min(reasoning_cues,2) + 0.08*has_code"
                " + 0.06*has_math_notation"
                " + 0.08*min(max(list_items-1,0),5)/5, 0, 1), rounded to 3 decimals"
            ),
            "task_base": dict(TASK_BASE),
            "length_term": "clip(log2(tokens/16)/log2(512/16), 0, 1); tokens = ids of "
            "tokenizer.json without truncation, [CLS] and [SEP] included",
            "cues": "regular expressions CONSTRAINT_PATTERN, HARD_PATTERN, REASONING_PATTERN, "
            "CODE_PATTERN, "
            "MATH_PATTERN, LIST_ITEM_PATTERN in complexity.py (counts of matches; code and "
            "math are 0/1)",
            "task": "the predicted task label",
            "tier_cutoffs": {"small_below": 0.35, "medium_below": 0.60, "large": "otherwise"},
            "heldout_check": results["complexity"],
            "heldout_check_files": list(HELDOUT_FILES),
            "examples": examples,
        },
        "build": {
            "script": "edge_models/build/train_classifier.py",
            "packages": package_versions(),
            "seed": SEED,
        },
    }
    write_yaml(out_dir / "card.yaml", card)
    print(f"wrote {out_dir} and {REPORT_PATH}; ONNX vs sklearn agreement {agreement:.4f}")


if __name__ == "__main__":
    main()
