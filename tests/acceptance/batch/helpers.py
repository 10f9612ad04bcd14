"""Batch files for the runner's tests: lines, uploads with the key metadata, S3 events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT = "/v1/chat/completions"


def _line(custom_id: str, model: str = "instant", url: str = CHAT, **body: Any) -> str:
    payload = {"model": model, "messages": [{"role": "user", "content": f"hi {custom_id}"}]}
    payload.update(body)
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": payload})


def _upload(s3: Any, bucket: str, key: str, lines: list[str], key_id: str | None) -> None:
    metadata = {"edgeroute-key-id": key_id} if key_id else {}
    body = ("\n".join(lines) + "\n").encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)


def _event(bucket: str, key: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 notification as S3 sends it: the key URL-encoded."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
            }
        ]
    }


def _output(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def serve_env(registry_file: Path, folder: Path, **batch: object) -> dict[str, str]:
    """`edgeroute serve` on the batch registry with its own SQLite store in ``folder``;
    ``batch`` sets ``EDGEROUTE_BATCH_*`` (``lease_s=2``: ``EDGEROUTE_BATCH_LEASE_S``)."""
    return {
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_SQLITE_PATH": str(folder / "state" / "edgeroute.db"),
        "EDGEROUTE_STORE": "sqlite",
        **{f"EDGEROUTE_BATCH_{name.upper()}": str(value) for name, value in batch.items()},
    }
