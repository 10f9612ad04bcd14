"""Read a configuration file from a local path or an ``s3://bucket/key`` URI.

Lambda functions keep the registry and the routing policy in the deployment's bucket;
laptops keep them in ``infra/``. Both loaders read through here.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeroute.errors import ConfigError


def _read_s3(uri: str) -> str:
    import boto3  # imported here: only deployments that keep files in S3 pay for it

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ConfigError(f"{uri}: an S3 location must look like s3://bucket/key.yaml")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    try:
        body = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # botocore raises many kinds; the message says which
        raise ConfigError(f"{uri}: cannot be read from S3: {exc}") from exc
    return str(body.read().decode("utf-8"))


def read_text(location: str | os.PathLike[str], what: str, variable: str) -> str:
    """The file's text; a ConfigError naming the location and the variable otherwise."""
    location = str(location)
    if location.startswith("s3://"):
        return _read_s3(location)
    path = Path(location)
    if not path.is_file():
        raise ConfigError(f"{location}: {what} not found (set {variable})")
    return path.read_text(encoding="utf-8")
