"""OpenAI's Files and Batches API against `edgeroute serve` (SQLite store, local files),
driven by the `openai` SDK as users drive it, with the real upstreams: the fault
server's models and llama.cpp's server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import openai
import pytest

from tests.support.gateway import GatewayProcess

CHAT: Final = "/v1/chat/completions"


@pytest.fixture(scope="module")
def served(
    registry_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("batches-api")
    env = {
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "store" / "edgeroute.db"),
        "EDGEROUTE_KEY_CACHE_TTL": "1",
        "EDGEROUTE_BATCH_CHUNK_LINES": "8",
        "EDGEROUTE_BATCH_CONCURRENCY": "4",
        "EDGEROUTE_BATCH_MAX_UPLOAD_BYTES": "2000000",
        "EDGEROUTE_BATCH_MAX_LINE_BYTES": "100000",
    }
    with GatewayProcess(env, workdir) as process:
        yield process


def _client(served: GatewayProcess, tenant: str) -> openai.OpenAI:
    name = f"{tenant}-{uuid.uuid4().hex[:6]}"
    key = served.create_key(name, "--tenant", tenant)["api_key"]
    return openai.OpenAI(base_url=served.url + "/v1", api_key=str(key), max_retries=0)


@pytest.fixture(scope="module")
def team(served: GatewayProcess) -> openai.OpenAI:
    return _client(served, "team")


@pytest.fixture(scope="module")
def other(served: GatewayProcess) -> openai.OpenAI:
    return _client(served, "other")


def line(custom_id: str, model: str = "instant", url: str = CHAT, **body: Any) -> str:
    payload: dict[str, Any] = {"model": model, **body}
    if url == CHAT:
        payload.setdefault("messages", [{"role": "user", "content": f"hi {custom_id}"}])
    else:
        payload.setdefault("input", f"text {custom_id}")
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": payload})


def upload(client: openai.OpenAI, lines: list[str], name: str = "in.jsonl") -> str:
    data = ("\n".join(lines) + "\n").encode()
    return client.files.create(file=(name, data), purpose="batch").id


def wait(client: openai.OpenAI, batch_id: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    seen = set()
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        seen.add(batch.status)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            batch.seen = seen  # type: ignore[attr-defined]
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


def results(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_the_sdk_round_trip(team: openai.OpenAI) -> None:
    lines = [line(f"q{i}", seed=i) for i in range(5)]
    lines.append(line("real", model="smollm2", max_tokens=2))  # llama.cpp, for real
    file_id = upload(team, lines)
    assert team.files.retrieve(file_id).bytes > 0
    assert file_id in [f.id for f in team.files.list().data]

    batch = team.batches.create(
        input_file_id=file_id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"run": "sdk"},
    )
    assert batch.status == "validating" and batch.metadata == {"run": "sdk"}
    done = wait(team, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 6 and done.request_counts.completed == 6
    assert done.error_file_id is None and done.completed_at and done.in_progress_at
    out = results(team, done.output_file_id)
    assert sorted(o["custom_id"] for o in out) == sorted([f"q{i}" for i in range(5)] + ["real"])
    real = next(o for o in out if o["custom_id"] == "real")
    assert real["response"]["body"]["choices"][0]["message"]["content"] is not None
    assert batch.id in [b.id for b in team.batches.list().data]


def test_the_list_pages_with_after_and_has_more(team: openai.OpenAI) -> None:
    file_id = upload(team, [line("one")])
    made = [
        team.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id
        for _ in range(3)
    ]
    first = team.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    second = team.batches.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == made[0]
    for batch_id in made:
        wait(team, batch_id)


def test_a_mixed_file_gives_one_result_per_line(team: openai.OpenAI) -> None:
    good = [line(f"g{i}") for i in range(192)]
    bad = {
        "json": '{"custom_id": "json", "method": "POST", broken',
        "model": line("model", model="no-such-model"),
        "url": line("url", url="/v1/embeddings"),
        "big": line("big", messages=[{"role": "user", "content": "x" * 200_000}]),
        "nobody": json.dumps({"custom_id": "nobody", "method": "POST", "url": CHAT}),
        "dup": line("g3"),
    }
    chats = [line(f"chat{i}", model="smollm2", max_tokens=1) for i in range(2)]
    lines = good[:90] + list(bad.values()) + chats + good[90:]
    file_id = upload(team, lines)
    done = wait(
        team, team.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id
    )
    out = results(team, done.output_file_id)
    errors = results(team, done.error_file_id)
    assert len(out) + len(errors) == len(lines) == 200
    assert done.status == "completed"
    assert done.request_counts.total == 200 and done.request_counts.failed == len(errors) == 6
    ids = [o["custom_id"] for o in out + errors]
    assert sorted(i for i in ids if i) == sorted(
        [f"g{i}" for i in range(192)] + ["g3", "model", "url", "big", "nobody", "chat0", "chat1"]
    )
    by_id = {e["custom_id"]: e for e in errors}
    assert "not valid JSON" in by_id[None]["error"]["message"]
    assert by_id["model"]["response"]["status_code"] == 404
    assert "no-such-model" in by_id["model"]["response"]["body"]["error"]["message"]
    assert "differs from the batch's endpoint" in by_id["url"]["error"]["message"]
    assert "EDGEROUTE_BATCH_MAX_LINE_BYTES" in by_id["big"]["error"]["message"]
    assert "'body' must be a JSON object" in by_id["nobody"]["error"]["message"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00\x01\x02binary", "binary"),
        (json.dumps([{"custom_id": "a"}]).encode(), "JSON array"),
        (b"just words\nmore words\n", "no line of the input file is a JSON object"),
    ],
)
def test_a_file_that_is_not_jsonl_fails_the_job(
    team: openai.OpenAI, content: bytes, reason: str
) -> None:
    file_id = team.files.create(file=("bad.jsonl", content), purpose="batch").id
    done = wait(
        team, team.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id
    )
    assert done.status == "failed" and done.failed_at
    assert done.errors is not None and reason in done.errors.data[0].message


def test_cancelling_stops_the_job(team: openai.OpenAI) -> None:
    file_id = upload(team, [line(f"s{i}", model="slow") for i in range(400)])
    batch = team.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    while (counts := team.batches.retrieve(batch.id).request_counts) and counts.completed < 8:
        time.sleep(0.05)
    cancelling = team.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = wait(team, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    out = results(team, done.output_file_id)
    assert 8 <= len(out) < 400 == done.request_counts.total
    assert len({o["custom_id"] for o in out}) == len(out)


def test_another_tenants_ids_are_not_found(team: openai.OpenAI, other: openai.OpenAI) -> None:
    file_id = upload(team, [line("mine")])
    batch = team.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    calls: list[Callable[[], object]] = [
        lambda: other.files.retrieve(file_id),
        lambda: other.files.content(file_id),
        lambda: other.files.delete(file_id),
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
        lambda: other.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert batch.id not in [b.id for b in other.batches.list().data]
    assert file_id not in [f.id for f in other.files.list().data]
    wait(team, batch.id)


def test_bad_requests_name_the_field(served: GatewayProcess, team: openai.OpenAI) -> None:
    file_id = upload(team, [line("x")])
    auth = {"Authorization": f"Bearer {team.api_key}"}
    cases = [
        ({"endpoint": "/v1/images"}, "endpoint", 400),
        ({"completion_window": "1h"}, "completion_window", 400),
        ({"input_file_id": "file-nope"}, "input_file_id", 404),
    ]
    for change, param, status in cases:
        body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **change}
        answer = httpx.post(served.url + "/v1/batches", json=body, headers=auth)
        assert answer.status_code == status and answer.json()["error"]["param"] == param
    with pytest.raises(openai.BadRequestError) as refused:
        team.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    assert refused.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as large:
        team.files.create(file=("x.jsonl", b"{}" * 1_000_001), purpose="batch")
    assert large.value.status_code == 413 and "/v1/files/uploads" in large.value.message
    presign = httpx.post(
        served.url + "/v1/files/uploads", json={"filename": "big.jsonl"}, headers=auth
    )
    assert presign.status_code == 400 and "EDGEROUTE_BATCH_BUCKET" in presign.text


def test_a_deleted_file_is_gone(team: openai.OpenAI) -> None:
    file_id = upload(team, [line("gone")])
    assert team.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        team.files.retrieve(file_id)
    assert file_id not in [f.id for f in team.files.list().data]


def test_the_cli_follows_a_gateways_batches(served: GatewayProcess, team: openai.OpenAI) -> None:
    batch = team.batches.create(
        input_file_id=upload(team, [line("cli")]), endpoint=CHAT, completion_window="24h"
    )
    wait(team, batch.id)
    where = ("--base-url", served.url, "--api-key", team.api_key)
    status = served.cli("batch", "status", batch.id, *where)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{batch.id}  completed") and "1/1 done" in status.stdout
    listed = served.cli("batch", "list", "--json", "--limit", "1", *where)
    assert json.loads(listed.stdout)["data"][0]["id"] == batch.id
    missing = served.cli("batch", "status", "batch_nope", *where)
    assert missing.returncode != 0 and "No batch with id 'batch_nope'" in missing.stderr


def test_edge_embeddings_lines_run_grouped_with_the_vectors_of_single_requests(
    team: openai.OpenAI,
) -> None:
    emb: Final = "/v1/embeddings"
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(30)]
    lines = [
        line(f"e{i}", model="use-multilingual-v3", url=emb, input=text)
        for i, text in enumerate(texts)
    ]
    lines.append(line("empty", model="use-multilingual-v3", url=emb, input=""))
    batch = team.batches.create(
        input_file_id=upload(team, lines), endpoint=emb, completion_window="24h"
    )
    done = wait(team, batch.id)
    out = {o["custom_id"]: o for o in results(team, done.output_file_id)}
    [empty] = results(team, done.error_file_id)
    assert len(out) == 30 and empty["custom_id"] == "empty"
    assert empty["response"]["status_code"] == 400
    for i in (0, 13, 29):
        alone = team.embeddings.create(model="use-multilingual-v3", input=texts[i])
        grouped = out[f"e{i}"]["response"]["body"]["data"][0]["embedding"]
        assert grouped == pytest.approx(alone.data[0].embedding, abs=1e-5)
