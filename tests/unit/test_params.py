from __future__ import annotations

import pytest

from edgeroute.config.registry import ModelSpec, ParameterRule
from edgeroute.errors import InvalidRequest
from edgeroute.pipeline.params import accepts, apply_parameter_rules


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


@pytest.mark.parametrize("rule", ["clamp", "reject"])
def test_the_max_tokens_rule_governs_max_completion_tokens(rule: str) -> None:
    model = _model(max_tokens=ParameterRule(min=1, max=64, rule=rule))  # type: ignore[arg-type]
    if rule == "clamp":
        sent = apply_parameter_rules(model, {"max_completion_tokens": 5000})
        assert sent == {"max_completion_tokens": 64}
        return
    with pytest.raises(InvalidRequest, match=r"\[1, 64\]") as caught:
        apply_parameter_rules(model, {"max_completion_tokens": 5000})
    assert caught.value.param == "max_completion_tokens"


def test_the_n_rule_governs_best_of() -> None:
    model = _model(n=ParameterRule(min=1, max=2, rule="reject"))
    with pytest.raises(InvalidRequest, match=r"'best_of': 5 is outside the range \[1, 2\]"):
        apply_parameter_rules(model, {"best_of": 5})
    assert apply_parameter_rules(model, {"n": 2, "best_of": 2}) == {"n": 2, "best_of": 2}


def test_a_default_is_not_added_beside_the_parameter_of_the_same_limit() -> None:
    model = _model(max_tokens=ParameterRule(min=1, max=64, default=16, rule="clamp"))
    assert apply_parameter_rules(model, {"max_completion_tokens": 8}) == {
        "max_completion_tokens": 8
    }


def test_accepts_tells_whether_a_model_would_refuse_without_changing_the_request() -> None:
    strict = _model(n=ParameterRule(min=1, max=1, rule="reject"))
    payload = {"n": 3}
    assert not accepts(strict, payload)
    assert accepts(_model(n=ParameterRule(min=1, max=1, rule="clamp")), payload)
    assert payload == {"n": 3}
