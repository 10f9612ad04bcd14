"""`edgeroute keys` against the running gateway's store: create, list, revoke."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import user_says

MESSAGES = user_says("hello")


def test_create_list_revoke(gateway: GatewayProcess) -> None:
    created = gateway.create_key("revokable", "--models", "instant")
    secret = str(created["api_key"])
    listed = [json.loads(line) for line in gateway.cli("keys", "list").stdout.splitlines()]
    mine = [k for k in listed if k["key_id"] == created["key_id"]]
    assert mine and mine[0]["models"] == ["instant"] and not mine[0]["revoked"]
    assert all(secret not in json.dumps(k) for k in listed)

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    assert client.chat.completions.create(model="instant", messages=MESSAGES).choices

    done = gateway.cli("keys", "revoke", str(created["key_id"]))
    assert done.returncode == 0, done.stderr
    # The gateway caches keys for EDGEROUTE_KEY_CACHE_TTL (1 s in this suite).
    deadline = time.monotonic() + 3
    while True:
        try:
            client.chat.completions.create(model="instant", messages=MESSAGES)
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
            break
        assert time.monotonic() < deadline, "revoked key still accepted after 3 s"
        time.sleep(0.2)


def test_revoke_unknown_key_fails_cleanly(gateway: GatewayProcess) -> None:
    done = gateway.cli("keys", "revoke", "key_doesnotexist")
    assert done.returncode == 2
    assert done.stderr.startswith("error: no key") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_plain_create_prints_key_once(gateway: GatewayProcess) -> None:
    done = gateway.cli("keys", "create", "--name", "printer")
    assert done.returncode == 0
    assert done.stdout.strip().startswith("er-")
    assert "shown once" in done.stderr


def test_restart_keeps_keys(gateway: GatewayProcess, api_key: str) -> None:
    second = GatewayProcess(gateway.env, gateway.workdir).start()
    try:
        client = openai.OpenAI(base_url=second.url + "/v1", api_key=api_key, max_retries=0)
        assert client.chat.completions.create(model="instant", messages=MESSAGES).choices
    finally:
        second.stop()
    with pytest.raises(Exception):  # noqa: B017  the stopped process answers nothing
        openai.OpenAI(
            base_url=second.url + "/v1", api_key=api_key, max_retries=0, timeout=2
        ).models.list()
