"""Settings: every ``EDGEROUTE_*`` variable, read once from the environment into one model.

This is the only module that reads ``EDGEROUTE_*`` from the environment. Lambda
handlers and ``edgeroute serve`` call ``Settings.from_env()`` at init and pass the
result down; a malformed value is a ``ConfigError`` naming the variable and the form
it takes. A variable's name is ``EDGEROUTE_`` and its field's path in upper case
(``batch.lease_s`` is ``EDGEROUTE_BATCH_LEASE_S``) unless the field names it itself.
An empty variable counts as unset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from edgeroute.config.loading import bundled
from edgeroute.errors import ConfigError

PREFIX = "EDGEROUTE_"
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

StoreBackend = Literal["sqlite", "dynamodb"]
Classify = Literal["background", "always", "auto"]
EmbedBatching = Literal["per-input", "batched"]
GuardrailStage = Literal["off", "input", "both"]  # store.base.GUARDRAIL_STAGES
PiiMode = Literal["allow", "mask", "block"]


def _setting(default: Any, meaning: str, expected: str, **constraints: Any) -> Any:
    """A field with its meaning (the README's) and the form a malformed value is told to take."""
    return Field(
        default, description=meaning, json_schema_extra={"expected": expected}, **constraints
    )


def _default_registry() -> str:
    return bundled("models.yaml")


def _default_policy() -> str:
    return bundled("routing.yaml")


_TABLE_NAME = "a DynamoDB table name each (set all six EDGEROUTE_TABLE_* or none)"


class TableNames(BaseModel):
    """The physical DynamoDB table name for each role (field name = role)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: str = _setting(..., "the API keys table", _TABLE_NAME, min_length=1)
    counters: str = _setting(..., "the rate and quota counters table", _TABLE_NAME, min_length=1)
    cache: str = _setting(..., "the response cache table", _TABLE_NAME, min_length=1)
    usage: str = _setting(..., "the usage records table", _TABLE_NAME, min_length=1)
    health: str = _setting(..., "the upstream health table", _TABLE_NAME, min_length=1)
    jobs: str = _setting(..., "the batch jobs table", _TABLE_NAME, min_length=1)

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @staticmethod
    def env_var(role: str) -> str:
        return f"{PREFIX}TABLE_{role.upper()}"

    @staticmethod
    def logical_id(role: str) -> str:
        """The table's resource name in template.yaml (``keys`` -> ``KeysTable``)."""
        return f"{role.capitalize()}Table"

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(**{r: f"{prefix}-{r}" for r in cls.roles()})

    def by_role(self) -> dict[str, str]:
        return self.model_dump()

    def as_env(self) -> dict[str, str]:
        return {self.env_var(r): name for r, name in self.by_role().items()}


class BatchConfig(BaseModel):
    """How the batch function runs a job (the ``EDGEROUTE_BATCH_*`` variables)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = _setting(
        8, "requests of one batch job in flight at once", "a whole number, 1 or more, e.g. 8", ge=1
    )
    # Read whole: the function's memory bounds this.
    max_bytes: int = _setting(
        100 * 1024 * 1024,
        "larger batch input files fail the job (split them)",
        "a whole number of bytes above 0, e.g. 104857600",
        gt=0,
    )
    # Lambda's longest run: a job claimed longer ago than this was abandoned.
    lease_s: float = _setting(
        900.0,
        "seconds a batch job's claim lasts; an older claim may be taken over",
        "a number of seconds above 0, e.g. 900",
        gt=0,
    )
    # The Files and Batches API (api/batches.py) and the resumable runner (batch/jobs.py).
    bucket: str = _setting(
        "",
        "S3 bucket of uploaded files and batch outputs ('' keeps them in "
        "`EDGEROUTE_BATCH_FILES_DIR`; the template sets the stack's bucket)",
        "an S3 bucket name, or ''",
    )
    files_dir: str = _setting(
        "",
        "folder of local batch files ('': `files/` beside the SQLite store file)",
        "a folder path, or ''",
    )
    max_upload_bytes: int = _setting(
        6 * 1024 * 1024,
        "larger `POST /v1/files` uploads get 413 (use `POST /v1/files/uploads` for a "
        "presigned S3 URL)",
        "a whole number of bytes above 0, e.g. 6291456",
        gt=0,
    )
    max_line_bytes: int = _setting(
        6 * 1024 * 1024,
        "a longer batch line becomes that line's error (as a request body over the "
        "limit would be refused)",
        "a whole number of bytes above 0, e.g. 6291456",
        gt=0,
    )
    chunk_lines: int = _setting(
        64,
        "lines run between two checkpoints of a batch job",
        "a whole number, 1 or more, e.g. 64",
        ge=1,
    )
    time_budget_s: float = _setting(
        0.0,
        "seconds one run of a job may take before it hands the rest on (0: the Lambda "
        "invocation's remaining time minus `EDGEROUTE_BATCH_MARGIN_S`, unlimited locally)",
        "a number of seconds, 0 or more, e.g. 600",
        ge=0,
    )
    margin_s: float = _setting(
        60.0,
        "seconds left unused at the end of an invocation to checkpoint and hand over",
        "a number of seconds, 0 or more, e.g. 60",
        ge=0,
    )
    resume_queue_url: str = _setting(
        "",
        "SQS queue that starts and resumes batch jobs on AWS (the template sets it)",
        "an SQS queue URL, or ''",
    )
    group_embeddings: bool = _setting(
        True,
        "run the edge embeddings (and moderations) of a job's lines in flight together as "
        "one ONNX inference",
        "true or false",
    )
    quota_percent: int = _setting(
        50,
        "percent of a key's requests and tokens per minute (and requests in flight) its "
        "batch lines may use, so online traffic keeps precedence",
        "a whole number from 1 to 100, e.g. 50",
        ge=1,
        le=100,
    )
    window_s: float = _setting(
        24 * 3600.0,
        "seconds a batch has from its creation (OpenAI's `24h` completion window) before it "
        "expires: lines not run by then go to its error file as `batch_expired`",
        "a number of seconds above 0, e.g. 86400",
        gt=0,
    )


class AuditConfig(BaseModel):
    """Where the audit archive keeps prompt and answer bodies, and for how long (the
    ``EDGEROUTE_AUDIT_*`` variables); the audit record itself always goes to the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str = _setting(
        "",
        "S3 bucket of the audit archive (`audit/<tenant>/<yyyy>/<mm>/<dd>/<request id>.json`); "
        "'' keeps it in `EDGEROUTE_AUDIT_DIR` (the template sets the stack's bucket)",
        "an S3 bucket name, or ''",
    )
    dir: str = _setting(
        "",
        "folder of the local audit archive ('': `audit/` beside the SQLite store file)",
        "a folder path, or ''",
    )
    retention_days: int = _setting(
        30,
        "days archived bodies are kept (locally swept; on S3 the template's lifecycle rule)",
        "a whole number of days, 1 or more, e.g. 30",
        ge=1,
    )
    bodies: bool = _setting(
        False,
        "archive prompt and answer bodies for every key, not only keys created with "
        "`--audit-bodies`",
        "true or false",
    )


class ResponsesConfig(BaseModel):
    """How long stored Responses live and how background jobs run (the
    ``EDGEROUTE_RESPONSES_*`` variables)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl_s: float = _setting(
        30 * 86_400.0,
        "seconds a stored Response (its result and conversation state) is kept",
        "a number of seconds above 0, e.g. 2592000",
        gt=0,
    )
    lease_s: float = _setting(
        120.0,
        "seconds a background Response's claim lasts without renewal; a job whose worker "
        "stopped is taken over after it",
        "a number of seconds above 0, e.g. 120",
        gt=0,
    )
    workers: int = _setting(
        4,
        "background Responses one gateway process runs at once",
        "a whole number, 1 or more, e.g. 4",
        ge=1,
    )
    worker_function: str = _setting(
        "",
        "Lambda function that runs background Responses, invoked asynchronously per job "
        "(the template sets ResponsesWorkerFunction); '' runs them in the gateway process",
        "a Lambda function name or ARN, or ''",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        # EDGEROUTE_TABLE_KEYS -> table.keys, EDGEROUTE_BATCH_LEASE_S -> batch.lease_s
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_ignore_empty=True,
        validate_by_name=True,  # Settings(key_cache_ttl_s=...) as well as the variable
        frozen=True,
    )

    registry: str = Field(
        default_factory=_default_registry,
        description="the model registry: a file or `s3://` URI",
        json_schema_extra={"expected": "a file path or s3://bucket/key URI"},
    )
    registry_env_allow: Annotated[tuple[str, ...], NoDecode] = _setting(
        (),
        "more environment variables the registry may read (`${VAR}`, `credential.env`) "
        "beyond `EDGEROUTE_*`, separated by commas",
        "variable names separated by commas, e.g. VLLM_API_KEY,TGI_URL",
    )
    registry_default: str = Field(
        default_factory=_default_registry,
        description="the registry served while an `s3://` `EDGEROUTE_REGISTRY` is missing or "
        "not valid at start (default: the copy bundled with the function, else "
        "`infra/models.yaml`; '': such an object stops the start)",
        json_schema_extra={"expected": "a file path, or ''"},
    )
    policy: str = _setting(
        "",
        "the routing policy: a file or `s3://` URI (empty: `infra/routing.yaml`)",
        "a file path or s3://bucket/key URI",
    )
    policy_default: str = Field(
        default_factory=_default_policy,
        description="the routing policy served while an `s3://` `EDGEROUTE_POLICY` is "
        "missing or not valid at start, and when `EDGEROUTE_POLICY` is empty (default: the "
        "copy bundled with the function, else `infra/routing.yaml`)",
        json_schema_extra={"expected": "a file path, or ''"},
    )
    config_reload_s: float = _setting(
        30.0,
        "seconds between checks whether the registry or the policy changed (a file's mtime "
        "and size, an `s3://` object's ETag); a changed file serves once it validates "
        "(0: read once at start)",
        "a number of seconds, 0 or more, e.g. 30",
        ge=0,
    )
    store: StoreBackend = _setting(
        "sqlite",
        "`sqlite` (embedded) or `dynamodb` (tables from `EDGEROUTE_TABLE_*`)",
        "'sqlite' or 'dynamodb'",
    )
    sqlite_path: str = _setting(
        ".edgeroute/edgeroute.db", "the embedded store's file", "a file path"
    )
    usage_spool: str = _setting(
        ".edgeroute/usage-spool.jsonl",
        "where usage records the store could not take wait, oldest first, until it can "
        "('' keeps them in memory only; the template sets /tmp/... on Lambda)",
        "a file path, or ''",
    )
    table: TableNames | None = Field(
        default=None,
        description="DynamoDB table names by role (`dynamodb` needs them; the template sets them)",
    )
    key_cache_ttl_s: float = _setting(
        5.0,
        "seconds a key look-up is cached (bounds how long a revoked key keeps working)",
        "a number of seconds, 0 or more, e.g. 5",
        ge=0,
        validation_alias=PREFIX + "KEY_CACHE_TTL",
    )
    oidc_config: str = _setting(
        "",
        "OIDC issuers whose JWTs are accepted as bearer tokens, with their claim mapping: "
        "the JSON itself, or a YAML/JSON file or `s3://` URI (empty: API keys only; "
        "docs/security.md)",
        "JSON text starting with '{', a file path or an s3://bucket/key URI",
    )
    trusted_proxies: int = _setting(
        0,
        "proxies in front of `edgeroute serve` that append to X-Forwarded-For; the client's "
        "address for keys' --ip-allow is the entry that many places from the right (0: the "
        "connection's own address; on Lambda, API Gateway's requestContext)",
        "a whole number, 0 or more",
        ge=0,
        le=16,
    )
    pii_default: PiiMode = _setting(
        "allow",
        "what happens to personal data and secrets in prompts for keys without their own "
        "`--pii`: `mask` (placeholders upstream, values restored in the answer), `block` "
        "(400 `pii_detected`) or `allow`",
        "'allow', 'mask' or 'block'",
    )
    pii_phone_region: str = _setting(
        "US",
        "the region phone numbers written without a country code are read in (ISO 3166 "
        "alpha-2; numbers with `+` are found in any region)",
        "two capital letters, e.g. US, GB or CN",
        pattern=r"^[A-Z]{2}$",
    )
    max_body_bytes: int = _setting(
        6 * 1024 * 1024,  # Lambda's synchronous payload limit
        "larger request bodies get 413",
        "a whole number of bytes above 0, e.g. 6291456",
        gt=0,
    )
    max_header_bytes: int = _setting(
        64 * 1024,
        "`edgeroute serve`: a request line and headers larger than this get 431 (on AWS, "
        "API Gateway's own limit applies)",
        "a whole number of bytes, 1024 or more, e.g. 65536",
        ge=1024,
    )
    max_headers: int = _setting(
        100,
        "`edgeroute serve`: requests with more headers than this get 431",
        "a whole number, 1 or more, e.g. 100",
        ge=1,
    )
    memory_limit_mb: int | None = _setting(
        None,
        "resident memory (MiB) above which new requests get 503 `overloaded` until it "
        "falls (unset: 90% of the function's memory on Lambda, no ceiling elsewhere)",
        "a whole number of MiB, 1 or more, e.g. 900",
        ge=1,
    )
    max_connections: int = _setting(
        512,
        "upstream connections per process (the HTTP pool, and each AWS client's)",
        "a whole number, 1 or more, e.g. 512",
        ge=1,
    )
    classify: Classify = _setting(
        "background",
        "`background` classifies named-model requests for the ledger after the answer is "
        "sent (bounded, shed under load); `always` classifies them beside the upstream "
        "call, for the x-edgeroute-task header too; `auto` only requests the router decides",
        "'background', 'always' or 'auto'",
    )
    guardrail_default: GuardrailStage = _setting(
        "off",
        "moderation for keys whose policy sets no guardrail: `input` refuses flagged "
        "requests before they are forwarded, `both` also withholds flagged buffered answers",
        "'off', 'input' or 'both'",
    )
    cache_ttl_s: float = _setting(
        3600.0,
        "seconds a cached response lives",
        "a number of seconds, 0 or more, e.g. 3600",
        ge=0,
        validation_alias=PREFIX + "CACHE_TTL",
    )
    cache_max_bytes: int = _setting(
        64 * 1024 * 1024,
        "bytes of responses the in-process (L1) part of the cache keeps",
        "a whole number of bytes, 0 or more, e.g. 67108864",
        ge=0,
    )
    edge_models: Path | None = _setting(
        None,
        "folder of the edge models (unset: the repository's `edge_models/`, "
        "else the Lambda layer's `/opt/edge_models`)",
        "a folder path",
    )
    edge_threads: int = _setting(
        1, "onnxruntime intra-op threads per edge model", "a whole number, 1 or more, e.g. 1", ge=1
    )
    embed_batching: EmbedBatching = _setting(
        "per-input",
        "`batched` runs a request's inputs as one padded batch (faster; vectors then "
        "depend on the batch)",
        "'per-input' or 'batched'",
    )
    health_ttl_s: float = _setting(
        180.0,
        "seconds a health probe's sample stays in the store",
        "a number of seconds above 0, e.g. 180",
        gt=0,
        validation_alias=PREFIX + "HEALTH_TTL",
    )
    batch: BatchConfig = Field(
        default=BatchConfig(), description="how the batch function runs jobs"
    )
    audit: AuditConfig = Field(
        default=AuditConfig(), description="the audit archive of prompt and answer bodies"
    )
    responses: ResponsesConfig = Field(
        default=ResponsesConfig(), description="stored Responses and background jobs"
    )

    @field_validator("registry_env_allow", mode="before")
    @classmethod
    def _variable_names(cls, value: Any) -> Any:
        """``A,B`` as the variable gives it; a list or tuple as code does."""
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list | tuple):
            return value
        names = tuple(str(n).strip() for n in names if str(n).strip())
        bad = [n for n in names if not _VARIABLE_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"not variable names: {', '.join(bad)}")
        return names

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment, or a ConfigError naming each malformed variable."""
        try:
            settings = cls()
        except ValidationError as exc:
            raise ConfigError("\n".join(_problems(exc.errors()))) from None
        except SettingsError as exc:  # a whole group set as one variable, and not as JSON
            raise ConfigError(
                f"{exc}: set a group's variables one by one (EDGEROUTE_BATCH_LEASE_S=900), "
                "not as one JSON value"
            ) from None
        if settings.store == "dynamodb":
            settings.tables()  # missing names fail here, at init, not on the first request
        return settings

    def tables(self) -> TableNames:
        """The DynamoDB table names, which the ``dynamodb`` store needs."""
        if self.table is None:
            names = ", ".join(TableNames.env_var(r) for r in TableNames.roles())
            raise ConfigError(f"{PREFIX}STORE=dynamodb needs the table names in {names}")
        return self.table


def variables() -> Iterator[tuple[str, FieldInfo]]:
    """Every variable the settings read, with its field (groups give one per member)."""
    for name, info in Settings.model_fields.items():
        group = _group(info)
        if group is None:
            yield _env_name(name, info), info
        else:
            for member, member_info in group.model_fields.items():
                yield _env_name(name, info) + "_" + member.upper(), member_info


def _env_name(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    return alias if isinstance(alias, str) else PREFIX + name.upper()


def _group(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a group field (``table``, ``batch``), None for a single variable."""
    for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _problems(errors: list[ErrorDetails]) -> list[str]:
    """A line per malformed variable, naming it and the form it takes; the members a
    group lacks share one line."""
    known = dict(variables())
    lines: list[str] = []
    unset: dict[str, list[str]] = {}  # expected form -> variables that are not set
    for error in errors:
        if not error["loc"]:
            lines.append(error["msg"])
            continue
        env = _variable([str(part) for part in error["loc"]])
        info = known.get(env)
        if info is None:
            lines.append(f"{env} is not a setting: remove it or fix its name (README: Settings)")
        elif error["type"] == "missing":
            unset.setdefault(_expected(info), []).append(env)
        else:
            lines.append(f"{env}={error['input']!r} is not valid: expected {_expected(info)}.")
    for expected, names in unset.items():
        verb = "is" if len(names) == 1 else "are"
        lines.append(f"{', '.join(names)} {verb} not set: expected {expected}.")
    return lines


def _variable(loc: list[str]) -> str:
    """The variable a validation error's location names (``["batch", "lease_s"]``)."""
    field = Settings.model_fields.get(loc[0])  # None: the location is the variable already
    env = loc[0] if field is None else _env_name(loc[0], field)
    return env + "".join("_" + part.upper() for part in loc[1:])


def _expected(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    return str(extra["expected"]) if isinstance(extra, dict) else "see README: Settings"
