"""Read a configuration file (a local path or an ``s3://bucket/key`` URI) and validate it.

Lambda functions keep the registry and the routing policy in the deployment's bucket;
laptops keep them in ``infra/``. Both loaders read, parse and validate through here, so
every problem is a ConfigError that names the file and, for a bad value, the field.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edgeroute.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
_REPO_ROOT = Path(__file__).resolve().parents[3]


def bundled(name: str) -> str:
    """The default configuration file ``name`` (``models.yaml``, ``routing.yaml``): the
    copy a build bundles into the package (functions/Makefile), else the repository's
    ``infra/`` one."""
    packaged = Path(__file__).resolve().parent / "bundled" / name
    return str(packaged if packaged.is_file() else _REPO_ROOT / "infra" / name)


class StrictModel(BaseModel):
    """A section of a configuration file: unknown fields are errors, and it never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _s3_location(uri: str) -> tuple[Any, str, str]:
    """An S3 client and the bucket and key ``uri`` names."""
    import boto3  # imported here: only deployments that keep files in S3 pay for it

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ConfigError(f"{uri}: an S3 location must look like s3://bucket/key.yaml")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint), bucket, key


def _read_s3(uri: str) -> tuple[str, str]:
    client, bucket, key = _s3_location(uri)
    try:
        got = client.get_object(Bucket=bucket, Key=key)
        text = got["Body"].read().decode("utf-8")
    except Exception as exc:  # botocore raises many kinds; the message says which
        raise ConfigError(f"{uri}: cannot be read from S3: {exc}") from exc
    return str(text), str(got.get("ETag", ""))


def _local_version(path: Path, location: str, what: str, variable: str) -> str:
    try:
        found = path.stat()
    except OSError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise ConfigError(f"{location}: {what} not found (set {variable})")
    return f"{found.st_mtime_ns}:{found.st_size}"


def version_of(location: str | os.PathLike[str], what: str, variable: str) -> str:
    """What changes whenever the file does: a local file's mtime and size, an S3
    object's ETag (one HEAD request). A ConfigError when it cannot be read."""
    location = str(location)
    if not location.startswith("s3://"):
        return _local_version(Path(location), location, what, variable)
    client, bucket, key = _s3_location(location)
    try:
        return str(client.head_object(Bucket=bucket, Key=key).get("ETag", ""))
    except Exception as exc:  # botocore raises many kinds; the message says which
        raise ConfigError(f"{location}: cannot be read from S3: {exc}") from exc


def read_versioned(location: str | os.PathLike[str], what: str, variable: str) -> tuple[str, str]:
    """The file's text and its ``version_of``: the version is taken first, so a file
    changing while it is read is read again on the next check, never missed."""
    location = str(location)
    if location.startswith("s3://"):
        return _read_s3(location)
    path = Path(location)
    version = _local_version(path, location, what, variable)
    try:
        return path.read_text(encoding="utf-8"), version
    except OSError as exc:
        raise ConfigError(f"{location}: {what} cannot be read: {exc}") from exc


def read_text(location: str | os.PathLike[str], what: str, variable: str) -> str:
    """The file's text; a ConfigError naming the location and the variable otherwise."""
    return read_versioned(location, what, variable)[0]


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``; a ConfigError naming ``source`` when it is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc


def validated(model: type[M], data: Any, source: str, named_list: str) -> M:
    """``data`` as a ``model``; else a ConfigError with one line per problem, each naming
    the file and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, source, named_list)) from exc


def _describe(error: ValidationError, data: Any, source: str, named_list: str) -> str:
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        # Name the items of the file's main list (models, rules) by their name, not by
        # list index, so the user can find them.
        if len(loc) >= 2 and loc[0] == named_list and isinstance(loc[1], int):
            with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                loc[1] = data[named_list][loc[1]].get("name", loc[1])
        path = ".".join(str(part) for part in loc)
        lines.append(f"{source}: {path}: {item['msg']}")
    return "\n".join(lines)
