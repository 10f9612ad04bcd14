"""Read one function's runtime settings from a SAM template, without SAM CLI.

The short tags (``!Ref``, ``!GetAtt``, ``!Sub``...) load as their long forms, and
intrinsics are resolved the way a deployed stack would resolve them for the parts a
local run needs: parameters take their overrides or defaults; references to other
resources become placeholders (the logical id, or ``Id.Attr`` for ``GetAtt``) unless
the caller passes real values, e.g. a table name in a local moto server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SAM_DEFAULT_TIMEOUT_S = 3
SAM_DEFAULT_MEMORY_MB = 128
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_NO_VALUE = object()


class TemplateError(ValueError):
    """The template lacks what a local invoke needs, or says it ambiguously."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    code_uri: Path | None
    runtime: str | None
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    function_name: str
    layers: list[Any] = field(default_factory=list)
    # Intrinsics left as placeholders, e.g. "Fn::ImportValue", so callers can warn.
    unresolved: list[str] = field(default_factory=list)


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form tags."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # !Ref and !Condition have no "Fn::" in their long forms.
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)  # !GetAtt Res.Attr is a list in long form
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]  # a MappingNode here
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with Path(path).open(encoding="utf-8") as fh:
        # A SafeLoader subclass (it only adds CloudFormation's short tags).
        data = yaml.load(fh, Loader=_CfnLoader)  # nosec B506
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: no Resources section")
    return data


def list_functions(template_path: Path) -> list[str]:
    """Logical ids of the Lambda functions in the template."""
    resources = load_template(template_path)["Resources"]
    return [
        k for k, v in resources.items() if isinstance(v, dict) and v.get("Type") in _FUNCTION_TYPES
    ]


def load_function(
    template_path: Path,
    logical_id: str,
    *,
    parameters: Mapping[str, str] | None = None,
    resources: Mapping[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    stack_name: str = "edgeroute-local",
) -> FunctionSpec:
    """Handler, code location, limits and merged environment of ``logical_id``.

    ``resources`` maps a logical id (for ``!Ref``) or ``Id.Attr`` (for ``!GetAtt``) to
    the value to use instead of the placeholder.
    """
    template_path = Path(template_path)
    tpl = load_template(template_path)
    res = tpl["Resources"].get(logical_id)
    if not isinstance(res, dict) or res.get("Type") not in _FUNCTION_TYPES:
        known = ", ".join(list_functions(template_path)) or "none"
        raise TemplateError(
            f"{logical_id!r} is not a function in {template_path} (functions: {known})"
        )
    resolver = TemplateResolver(
        tpl, parameters or {}, resources or {}, region, account_id, stack_name
    )
    props = dict(res.get("Properties") or {})
    if res["Type"] == "AWS::Serverless::Function":
        props = _merge_globals(tpl.get("Globals", {}).get("Function") or {}, props)
    else:
        props.setdefault("CodeUri", props.get("Code"))  # plain Lambda: Code is a path locally
    if props.get("PackageType") == "Image":
        raise TemplateError(f"{logical_id} is an image function; it has no handler to run")
    handler = resolver.resolve(props.get("Handler"))
    if not isinstance(handler, str) or not handler:
        raise TemplateError(f"{logical_id} has no Handler")
    code_uri = resolver.resolve(props.get("CodeUri"))
    env_vars = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
    name = resolver.resolve(props.get("FunctionName")) or logical_id
    return FunctionSpec(
        logical_id=logical_id,
        handler=handler,
        code_uri=(template_path.parent / code_uri).resolve() if isinstance(code_uri, str) else None,
        runtime=_opt_str(resolver.resolve(props.get("Runtime"))),
        timeout_s=int(resolver.resolve(props.get("Timeout", SAM_DEFAULT_TIMEOUT_S))),
        memory_mb=int(resolver.resolve(props.get("MemorySize", SAM_DEFAULT_MEMORY_MB))),
        environment={str(k): _env_str(v) for k, v in env_vars.items() if v is not _NO_VALUE},
        function_name=str(name),
        layers=[v for v in resolver.resolve(props.get("Layers") or []) if v is not _NO_VALUE],
        unresolved=sorted(set(resolver.unresolved)),
    )


def template_resolver(
    tpl: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> TemplateResolver:
    """Resolves intrinsic functions and conditions of ``tpl`` for ``parameters`` (defaults
    for the rest), as CloudFormation would in us-east-1 for account 123456789012."""
    return TemplateResolver(
        tpl, parameters or {}, {}, "us-east-1", "123456789012", "edgeroute-local"
    )


def _merge_globals(globals_fn: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    # SAM's rules: maps merge key by key (function wins), lists append, scalars replace.
    merged: dict[str, Any] = dict(globals_fn)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def _env_str(value: Any) -> str:
    # CloudFormation stringifies scalars; YAML true becomes "true", not "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class TemplateResolver:
    def __init__(
        self,
        tpl: Mapping[str, Any],
        parameters: Mapping[str, str],
        resources: Mapping[str, str],
        region: str,
        account_id: str,
        stack_name: str,
    ) -> None:
        self.tpl = tpl
        self.resources = resources
        self.unresolved: list[str] = []
        self.refs: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        for name, spec in (tpl.get("Parameters") or {}).items():
            if name in parameters:
                self.refs[name] = parameters[name]
            elif isinstance(spec, dict) and "Default" in spec:
                self.refs[name] = spec["Default"]
            else:
                continue
            kind = str(spec.get("Type", "")) if isinstance(spec, dict) else ""
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                self.refs[name] = str(self.refs[name]).split(",")
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):  # !Ref AWS::NoValue removes a list item, as in a map
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(arg)
            if isinstance(key, str) and key.startswith("Fn::"):
                fn = getattr(self, "_fn_" + key[4:].lower(), None)
                if fn is None:  # GetAZs, ImportValue, Cidr...: nothing local to resolve to
                    self.unresolved.append(key)
                    return f"<{key}>"
                return fn(arg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def _ref(self, name: Any) -> Any:
        name = str(self.resolve(name))
        if name in self.resources:
            return self.resources[name]
        if name in self.refs:
            return self.refs[name]
        if name in (self.tpl.get("Parameters") or {}):
            raise TemplateError(f"parameter {name} has no Default; pass it in parameters")
        if name not in self.tpl["Resources"]:
            raise TemplateError(f"!Ref {name}: no such parameter or resource")
        return name  # another resource: its logical id stands in for its physical id

    def _fn_getatt(self, arg: Any) -> Any:
        res, attr = (arg.split(".", 1) if isinstance(arg, str) else [str(a) for a in arg])[:2]
        key = f"{res}.{attr}"
        if key in self.resources:
            return self.resources[key]
        if res not in self.tpl["Resources"]:
            raise TemplateError(f"!GetAtt {key}: no such resource")
        return key

    def _fn_sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def repl(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"  # ${!Literal} escapes a substitution
            if expr in variables:
                return str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.tpl["Resources"]:
                return str(self._fn_getatt(expr))
            return str(self._ref(expr))

        return re.sub(r"\$\{([^}]+)\}", repl, str(text))

    def _fn_join(self, arg: Any) -> str:
        sep, items = arg
        return str(sep).join(str(v) for v in self.resolve(items) if v is not _NO_VALUE)

    def _fn_select(self, arg: Any) -> Any:
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    def _fn_split(self, arg: Any) -> list[str]:
        sep, text = arg
        return str(self.resolve(text)).split(str(sep))

    def _fn_findinmap(self, arg: Any) -> Any:
        name, top, second = (str(self.resolve(a)) for a in arg[:3])
        try:
            return self.tpl["Mappings"][name][top][second]
        except (KeyError, TypeError):
            raise TemplateError(f"!FindInMap [{name}, {top}, {second}]: not in Mappings") from None

    def _fn_if(self, arg: Any) -> Any:
        cond, when_true, when_false = arg
        return self.resolve(when_true if self._condition(str(cond)) else when_false)

    def _fn_equals(self, arg: Any) -> bool:
        a, b = (self.resolve(v) for v in arg)
        return str(a) == str(b)

    def _fn_not(self, arg: Any) -> bool:
        return not self._truth(arg[0])

    def _fn_and(self, arg: Any) -> bool:
        return all(self._truth(v) for v in arg)

    def _fn_or(self, arg: Any) -> bool:
        return any(self._truth(v) for v in arg)

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return self._condition(str(value["Condition"]))
        return bool(self.resolve(value))

    def condition(self, name: str) -> bool:
        """Whether the template's condition ``name`` holds for these parameters."""
        return self._condition(name)

    def _condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.tpl.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"condition {name} is not defined")
            self._conditions[name] = self._truth(spec)
        return self._conditions[name]
