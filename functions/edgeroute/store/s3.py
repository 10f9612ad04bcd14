"""The one way edgeroute makes an S3 client (batch files, the audit archive)."""

from __future__ import annotations

import os
from typing import Any


def make_s3_client() -> Any:
    """A boto3 S3 client; ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` point it at a local
    server. Path-style addressing, which every S3 and local server understands."""
    import boto3  # imported here: only what uses S3 pays for boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"}, s3={"addressing_style": "path"}
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
