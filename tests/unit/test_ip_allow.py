"""Keys limited to networks (`keys create --ip-allow 10.0.0.0/8`): a call from elsewhere
is a 403 naming the address; behind trusted proxies the address comes from
X-Forwarded-For, counted from the right, so a client cannot claim one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from edgeroute.errors import PermissionDenied
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from tests.support.inprocess import Client, memory_gateway


async def test_the_allow_list_decides_by_address() -> None:
    store = SQLiteStore(":memory:")
    secret, key = mint_key("k", ip_allow=("10.0.0.0/8", "2001:db8::/32"))
    await store.put_key(key)
    auth = Authenticator(store)
    assert (await auth.authenticate(secret, "10.1.2.3")).key_id == key.key_id
    assert (await auth.authenticate(secret, "2001:db8::1")).key_id == key.key_id
    for address in ("192.168.0.1", None, "not-an-address"):
        with pytest.raises(PermissionDenied) as refused:
            await auth.authenticate(secret, address)
        assert refused.value.code == "ip_not_allowed" and "10.0.0.0/8" in refused.value.message
    await store.close()


async def _status(gw_proxies: int, allow: tuple[str, ...], forwarded: str | None) -> int:
    gw = memory_gateway("models: []")
    gw.settings = gw.settings.model_copy(update={"trusted_proxies": gw_proxies})
    secret, key = mint_key("k", ip_allow=allow)
    await gw.store.put_key(key)
    client = Client(gw, secret)
    headers = {"authorization": f"Bearer {secret}"}
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    transport = httpx.ASGITransport(app=client.app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/v1/models", headers=headers)
    if response.status_code == 403:
        assert response.json()["error"]["type"] == "permission_error"
    return response.status_code


async def test_the_connection_address_counts_without_proxies() -> None:
    assert await _status(0, ("127.0.0.0/8",), None) == 200
    assert await _status(0, ("10.0.0.0/8",), None) == 403
    assert await _status(0, ("10.0.0.0/8",), "10.0.0.7") == 403  # a claim, not trusted


async def test_behind_one_proxy_its_entry_counts_and_client_claims_do_not() -> None:
    assert await _status(1, ("10.0.0.0/8",), "1.2.3.4, 10.0.0.7") == 200
    assert await _status(1, ("10.0.0.0/8",), "10.0.0.7, 1.2.3.4") == 403
    assert await _status(1, ("10.0.0.0/8",), None) == 403


def test_a_bad_network_is_a_usage_error(usage_error: Callable[..., str]) -> None:
    err = usage_error("keys", "create", "--name", "x", "--ip-allow", "10.0.0.0/8,nowhere")
    assert "'nowhere' is not an address or network" in err
