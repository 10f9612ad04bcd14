"""The model registry: which models exist, where they run, what they cost and accept.

Loaded from YAML at a local path or an ``s3://`` URI (``EDGEROUTE_REGISTRY``).
String values may reference environment variables as ``${NAME}`` or
``${NAME:-default}`` so one file serves laptops and deployments alike.

A registry reads only the environment variables it is allowed to (``${NAME}`` and
``credential.env`` alike): names starting with ``EDGEROUTE_`` and those the operator
lists in ``EDGEROUTE_REGISTRY_ENV_ALLOW``. Anything else (the function's AWS keys, say)
is refused at load, so a registry cannot send it to an endpoint of its choosing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from edgeroute.config.loading import StrictModel, parse_yaml, read_text, validated
from edgeroute.errors import ConfigError
from edgeroute.types import Capability

Tier = Literal["edge", "small", "medium", "large"]
TIER_ORDER: tuple[Tier, ...] = ("edge", "small", "medium", "large")
# Names the router decides for; no model may take them.
RESERVED_NAMES = frozenset({"auto", "auto:cheap", "auto:best", *TIER_ORDER})


class Protocol(StrEnum):
    OPENAI = "openai"  # vLLM, llama.cpp server, Ollama, TGI Messages API
    TGI = "tgi"  # TGI's native /generate and /generate_stream
    EDGE = "edge"  # answered in-process by the edge ONNX models
    SAGEMAKER = "sagemaker"  # SageMaker InvokeEndpoint(WithResponseStream), via boto3
    BEDROCK = "bedrock"  # Bedrock Converse/ConverseStream, via boto3
    ANTHROPIC = "anthropic"  # Anthropic's Messages API, or a server that speaks it


class Credential(StrictModel):
    """Where the upstream's credential comes from; never the secret itself."""

    env: str | None = None
    secret: str | None = Field(default=None, description="Secrets Manager name or SSM path")
    header: str = "Authorization"
    scheme: str = "Bearer"
    required: bool = Field(
        default=True, description="when false, an unset variable means: send no credential"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Credential:
        if self.env and self.secret:
            raise ValueError("give either 'env' or 'secret', not both")
        return self


class ParameterRule(StrictModel):
    min: float | None = None
    max: float | None = None
    default: float | None = None
    rule: Literal["clamp", "reject"] = "reject"

    def clamp(self, value: float) -> float:
        """``value`` moved into [min, max]; a bound left out leaves that side open."""
        low = self.min if self.min is not None else value
        high = self.max if self.max is not None else value
        return min(max(value, low), high)

    @model_validator(mode="after")
    def _ordered(self) -> ParameterRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Price(StrictModel):
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1_000_000


class Timeouts(StrictModel):
    connect: float = Field(default=3.0, gt=0)
    read: float = Field(default=60.0, gt=0, description="longest wait between two bytes")
    total: float = Field(default=300.0, gt=0, description="the whole upstream call")


def _http_url(value: str) -> str:
    if value and not re.match(r"^https?://", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value.rstrip("/")


# Protocols whose adapters find their service without a URL (boto3: region from env or the
# URL) or run in-process.
_NO_URL = (Protocol.EDGE, Protocol.SAGEMAKER, Protocol.BEDROCK)


class Replica(StrictModel):
    """One server of a model (a region, an instance pool, a provider) and its share of the
    model's traffic. Unset ``protocol`` and ``credential`` are the model's."""

    endpoint: str = ""
    weight: float = Field(default=1.0, ge=0, description="relative share; 0 drains it")
    protocol: Protocol | None = None
    credential: Credential | None = None
    region: str | None = None
    version: str | None = Field(default=None, description="what it runs, e.g. a canary's")
    name: str | None = Field(default=None, min_length=1, description="its label")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        return _http_url(value)

    def label(self, index: int) -> str:
        """How responses and the ledger name it (never its URL): its ``name``, else its
        region and version, else its position."""
        given = "/".join(part for part in (self.region, self.version) if part)
        return self.name or given or f"replica-{index + 1}"


class ModelSpec(StrictModel):
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    protocol: Protocol = Protocol.OPENAI
    endpoint: str = ""
    upstream_model: str | None = Field(default=None, description="name sent upstream")
    inference_component: str | None = Field(
        default=None,
        min_length=1,
        description="sagemaker only: the inference component on the endpoint that serves it",
    )
    credential: Credential | None = None
    tier: Tier
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    context_window: int = Field(default=4096, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    parameters: dict[str, ParameterRule] = Field(default_factory=dict)
    price: Price = Price()
    timeouts: Timeouts = Timeouts()
    retries: int = Field(default=1, ge=0, le=5, description="retries before the first byte")
    fallbacks: tuple[str, ...] = ()
    degrade: bool = Field(
        default=False,
        description="when it and its fallbacks are down or fail, a request naming it may "
        "be answered by the best healthy lower-tier model (labelled degraded)",
    )
    description: str = ""
    replicas: tuple[Replica, ...] = ()
    batch_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="batch lines in flight at once toward this model, over all of a "
        "run's jobs (default: only EDGEROUTE_BATCH_CONCURRENCY per job)",
    )
    # Set on the spec of one replica (``replica_set``): its label and place in the set.
    _replica: Replica | None = PrivateAttr(default=None)
    _label: str = PrivateAttr(default="")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _endpoint_needed(self) -> ModelSpec:
        if self.inference_component is not None and not self._sagemaker_only():
            raise ValueError(
                "inference_component: only a SageMaker endpoint has inference components; "
                "set 'protocol: sagemaker' (on the model and every replica) or remove it"
            )
        if self.replicas:
            _check_replicas(self)
        elif self.protocol not in _NO_URL and not self.endpoint:
            raise ValueError(
                f"protocol '{self.protocol.value}' needs an 'endpoint' URL "
                "(or a 'replicas' list of endpoints)"
            )
        return self

    def _sagemaker_only(self) -> bool:
        protocols = {r.protocol or self.protocol for r in self.replicas} or {self.protocol}
        return protocols == {Protocol.SAGEMAKER}

    @property
    def wire_name(self) -> str:
        return self.upstream_model or self.name

    @cached_property
    def replica_set(self) -> tuple[ModelSpec, ...]:
        """The model as each replica serves it (endpoint, protocol and credential filled
        in); a model with one ``endpoint`` is its own single replica."""
        if not self.replicas:
            return (self,)
        specs = []
        for index, replica in enumerate(self.replicas):
            spec = self.model_copy(
                update={
                    "endpoint": replica.endpoint,
                    "protocol": replica.protocol or self.protocol,
                    "credential": replica.credential or self.credential,
                    "replicas": (),
                }
            )
            for cached in _PER_REPLICA:  # a copy must not keep the model's own answers
                spec.__dict__.pop(cached, None)
            spec._replica, spec._label = replica, replica.label(index)
            specs.append(spec)
        return tuple(specs)

    # Cached (in the instance's dict): the choice reads them per replica per request, and
    # private attributes are slow to read.
    @cached_property
    def replica_label(self) -> str:
        """The replica this spec is, as responses and the ledger name it; "" for a model
        with one endpoint."""
        return self._label

    @cached_property
    def replica_version(self) -> str:
        return (self._replica.version or "") if self._replica else ""

    @cached_property
    def weight(self) -> float:
        return self._replica.weight if self._replica else 1.0

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities


_PER_REPLICA = ("replica_set", "replica_label", "replica_version", "weight")


def _check_replicas(model: ModelSpec) -> None:
    """A replica list that can serve: no ``endpoint`` beside it, each replica reachable,
    no two alike, some traffic allowed."""
    if model.endpoint:
        raise ValueError(
            "give either 'endpoint' or 'replicas', not both: move the endpoint into the "
            "replicas list as '- endpoint: ...'"
        )
    if model.protocol is Protocol.EDGE:
        raise ValueError("an edge model runs in-process: remove its 'replicas'")
    endpoints: dict[str, int] = {}
    labels: dict[str, int] = {}
    for index, replica in enumerate(model.replicas):
        where = f"replicas.{index}"
        protocol = replica.protocol or model.protocol
        if protocol is Protocol.EDGE:
            raise ValueError(f"{where}.protocol: 'edge' runs in-process; use another protocol")
        if protocol not in _NO_URL and not replica.endpoint:
            raise ValueError(f"{where}: protocol '{protocol.value}' needs an 'endpoint' URL")
        if replica.endpoint in endpoints:
            raise ValueError(
                f"{where}.endpoint: '{replica.endpoint}' is replicas.{endpoints[replica.endpoint]}"
                "'s endpoint too; each replica needs its own endpoint"
            )
        endpoints[replica.endpoint] = index
        label = replica.label(index)
        if label in labels:
            raise ValueError(
                f"{where}: replicas.{labels[label]} is labelled '{label}' too; give each "
                "replica a distinct 'name'"
            )
        labels[label] = index
    if not any(replica.weight > 0 for replica in model.replicas):
        raise ValueError("replicas: every weight is 0; give at least one replica a weight above 0")


def upstream_specs(models: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Every replica of every model: what is probed, and what circuits are kept for."""
    return [spec for model in models for spec in model.replica_set]


class RegistryFile(StrictModel):
    models: list[ModelSpec]


class Registry:
    """Models by name and alias, plus the checks every request needs."""

    def __init__(self, models: list[ModelSpec], source: str = "<memory>") -> None:
        self.source = source
        self._models: dict[str, ModelSpec] = {}
        self._by_name: dict[str, ModelSpec] = {}
        for model in models:
            for name in (model.name, *model.aliases):
                if name in RESERVED_NAMES:
                    raise ConfigError(
                        f"{source}: models.{model.name}: '{name}' is reserved for routing "
                        f"({', '.join(sorted(RESERVED_NAMES))}); choose another name or alias"
                    )
                if name in self._by_name:
                    raise ConfigError(f"{source}: model name or alias '{name}' is used twice")
                self._by_name[name] = model
            self._models[model.name] = model
        for model in models:
            for fallback in model.fallbacks:
                if fallback not in self._by_name:
                    raise ConfigError(
                        f"{source}: models.{model.name}.fallbacks names '{fallback}', "
                        "which is not a model in this registry"
                    )

    def get(self, name: str) -> ModelSpec | None:
        return self._by_name.get(name)

    def models(self) -> list[ModelSpec]:
        return list(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Variables every registry may read; others only when listed in ENV_ALLOW_SETTING.
ENV_NAMESPACE = "EDGEROUTE_"
ENV_ALLOW_SETTING = "EDGEROUTE_REGISTRY_ENV_ALLOW"


def _check_readable(name: str, allowed: Collection[str], source: str, where: str) -> None:
    if name.startswith(ENV_NAMESPACE) or name in allowed:
        return
    raise ConfigError(
        f"{source}: {where}: the registry may not read the environment variable {name}: "
        f"it reads only names starting with {ENV_NAMESPACE} and those listed in "
        f"{ENV_ALLOW_SETTING}. Rename the variable to {ENV_NAMESPACE}{name}, or add "
        f"{name} to {ENV_ALLOW_SETTING} (names separated by commas)."
    )


def _expand_env(value: Any, allowed: Collection[str], source: str, where: str) -> Any:
    """``value`` with its ``${NAME}`` references replaced; ``where`` is its field path."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            _check_readable(match.group(1), allowed, source, where)
            return os.environ.get(match.group(1)) or (match.group(2) or "")

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return [
            _expand_env(v, allowed, source, f"{where}.{_item_name(v, i)}")
            for i, v in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            k: _expand_env(v, allowed, source, f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    return value


def _item_name(item: Any, index: int) -> str:
    """A list item as errors name it: a model by its name, anything else by position."""
    name = item.get("name") if isinstance(item, dict) else None
    return str(name) if isinstance(name, str) else str(index)


def parse_registry(text: str, source: str, env_allow: Collection[str] = ()) -> Registry:
    """The registry in ``text``; ``env_allow`` lists the variables it may read beyond
    ``EDGEROUTE_*`` (``Settings.registry_env_allow``)."""
    data = _expand_env(parse_yaml(text, source), env_allow, source, "")
    parsed = validated(RegistryFile, data, source, "models")
    for model in parsed.models:
        if model.credential is not None and model.credential.env:
            where = f"models.{model.name}.credential.env"
            _check_readable(model.credential.env, env_allow, source, where)
        for index, replica in enumerate(model.replicas):
            if replica.credential is not None and replica.credential.env:
                where = f"models.{model.name}.replicas.{index}.credential.env"
                _check_readable(replica.credential.env, env_allow, source, where)
    return Registry(parsed.models, source)


def load_registry(location: str | os.PathLike[str], env_allow: Collection[str] = ()) -> Registry:
    """Load and validate a registry from a file path or an ``s3://bucket/key`` URI."""
    text = read_text(location, "registry file", "EDGEROUTE_REGISTRY")
    return parse_registry(text, str(location), env_allow)
