from __future__ import annotations

import pytest

from edgeroute.config.registry import ModelSpec, ParameterRule
from edgeroute.errors import InvalidRequest
from edgeroute.pipeline.params import apply_parameter_rules


def _model(**rules: ParameterRule) -> ModelSpec:
    return ModelSpec(
        name="m", endpoint="http://h", tier="small", parameters=rules, max_output_tokens=100
    )


def test_reject_names_parameter_and_range() -> None:
    model = _model(temperature=ParameterRule(min=0, max=1, rule="reject"))
    with pytest.raises(InvalidRequest) as caught:
        apply_parameter_rules(model, {"temperature": 1.2})
    assert caught.value.param == "temperature"
    assert "[0, 1]" in caught.value.message


def test_clamp_and_default() -> None:
    model = _model(
        top_p=ParameterRule(min=0.1, max=0.9, rule="clamp"),
        max_tokens=ParameterRule(min=1, max=64, default=16, rule="clamp"),
    )
    payload = apply_parameter_rules(model, {"top_p": 1.0})
    assert payload == {"top_p": 0.9, "max_tokens": 16}
    assert apply_parameter_rules(model, {"max_tokens": 500})["max_tokens"] == 64


def test_api_wide_ranges_apply_to_every_model() -> None:
    with pytest.raises(InvalidRequest, match=r"\[-2, 2\]"):
        apply_parameter_rules(_model(), {"presence_penalty": 3})


def test_max_output_tokens() -> None:
    with pytest.raises(InvalidRequest, match="at most 100"):
        apply_parameter_rules(_model(), {"max_tokens": 101})
