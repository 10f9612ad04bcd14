"""Embeddings answered at the edge (the multilingual encoder in-process), through the
openai SDK, checked against an fp32 reference computed here from the source weights."""

from __future__ import annotations

from typing import Literal

import httpx
import numpy as np
import openai
import pytest

from tests.support.gateway import GatewayProcess

# English and Chinese sentences of every length class: greetings, questions, long text.
SENTENCES = [
    "hello",
    "The cat sleeps on the sofa.",
    "How do I reverse a linked list in Python without recursion?",
    "Quarterly revenue grew 12% while operating costs fell, driven by lower cloud spend. " * 6,
    "你好",
    "今天天气很好\uff0c我们去公园散步吧。",  # \uff0c: the full-width comma Chinese uses
    "请帮我把这段合同条款翻译成英文\uff0c并指出其中可能存在的法律风险。",
    "人工智能正在改变软件开发的方式\uff0c开发者需要学习新的工具和工作流程。" * 6,
]


def _vectors(
    client: openai.OpenAI,
    texts: list[str],
    encoding_format: Literal["float", "base64"] | openai.Omit = openai.omit,
) -> np.ndarray:
    result = client.embeddings.create(
        model="use-multilingual-v3", input=texts, encoding_format=encoding_format
    )
    return np.array([d.embedding for d in sorted(result.data, key=lambda d: d.index)])


def test_vectors_agree_with_an_fp32_reference_computed_here(client: openai.OpenAI) -> None:
    from edgeroute.edge import embedder
    from tests.support import use_reference

    got = _vectors(client, SENTENCES)  # the SDK asks for base64 and decodes it
    rows = [embedder.pieces([text])[0] for text in SENTENCES]
    reference = np.array([use_reference.pooled(row, [(0, len(row))])[0] for row in rows])
    cosines = (got * reference).sum(axis=1)
    # Weight-only quantization with fp32 products: the same vector to float rounding,
    # on any CPU (no integer kernel runs), in English and in Chinese alike.
    assert cosines.min() >= 0.9999, dict(zip(SENTENCES, cosines.round(6), strict=True))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)


def test_a_text_gets_the_same_vector_whatever_it_is_sent_with(client: openai.OpenAI) -> None:
    alone = _vectors(client, ["hello"])[0]
    in_batch = _vectors(client, ["a much longer sentence that forces padding " * 5, "hello"])[1]
    assert float(alone @ in_batch) > 0.9999


def test_similar_sentences_score_higher_than_unrelated(client: openai.OpenAI) -> None:
    cat, kitten, invoice = _vectors(
        client,
        [
            "The cat sleeps on the sofa.",
            "A kitten is napping on the couch.",
            "Pay the invoice by Friday.",
        ],
        encoding_format="float",
    )
    assert float(cat @ kitten) > float(cat @ invoice) + 0.2


def test_batch_is_one_request_with_usage(client: openai.OpenAI) -> None:
    response = client.embeddings.with_raw_response.create(
        model="edge-embed", input=[f"sentence number {i}" for i in range(32)]
    )
    result = response.parse()
    assert [d.index for d in result.data] == list(range(32))
    assert result.usage.prompt_tokens >= 32 * 4
    assert response.headers["x-edgeroute-tier"] == "edge"


def test_float_and_base64_agree(gateway: GatewayProcess, api_key: str) -> None:
    def call(fmt: str) -> np.ndarray:
        body = httpx.post(
            gateway.url + "/v1/embeddings",
            json={"model": "use-multilingual-v3", "input": "same text", "encoding_format": fmt},
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()
        value = body["data"][0]["embedding"]
        if fmt == "base64":
            import base64

            return np.frombuffer(base64.b64decode(value), dtype="<f4")
        return np.array(value, dtype=np.float32)

    assert np.allclose(call("float"), call("base64"), atol=1e-6)


def test_truncate_extension(client: openai.OpenAI) -> None:
    long_text = "word " * 700
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="use-multilingual-v3", input=long_text)
    assert "512 tokens" in caught.value.message and "truncate" in caught.value.message
    result = client.embeddings.create(
        model="use-multilingual-v3", input=long_text, extra_body={"truncate": True}
    )
    assert result.usage.prompt_tokens == 512


@pytest.mark.parametrize(
    ("payload", "param", "words"),
    [
        ({"input": []}, "input", "at least 1"),
        ({"input": ["ok", 5]}, "input[1]", "valid string"),
        ({"input": ["ok", "  "]}, "input", "'input[1]' is empty"),
        ({"input": ["x"] * 257}, "input", "at most 256"),
        ({"input": [[1, 2, 3]]}, "input", "takes text"),
        ({"input": "x", "dimensions": 384}, "dimensions", "512"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format", "float"),
    ],
)
def test_bad_inputs_get_clear_400s(
    gateway: GatewayProcess, api_key: str, payload: dict[str, object], param: str, words: str
) -> None:
    response = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "use-multilingual-v3", **payload},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]
