"""The REST API authorizer's answers: IAM policies over a whole stage, with the context
API Gateway hands on (to the app's event on Allow, to the ACCESS_DENIED response on Deny).

Pure functions, no init: the template's gateway responses are checked against them.
"""

from __future__ import annotations

from typing import Any

from edgeroute.errors import EdgerouteError
from edgeroute.store.base import ApiKey


def stage_arn(method_arn: str) -> str:
    """Every method of the stage ``method_arn`` (``arn:...:<api>/<stage>/<VERB>/<path>``)
    belongs to: ``arn:...:<api>/<stage>/*``. A cached answer is reused for other methods
    of the same cached resource (``ANY /v1/{proxy+}``), so it must not name one method."""
    api, stage, *_ = method_arn.split("/")
    return f"{api}/{stage}/*"


def _policy(
    principal: str, effect: str, method_arn: str, context: dict[str, str]
) -> dict[str, Any]:
    statement = {
        "Action": "execute-api:Invoke",
        "Effect": effect,
        "Resource": stage_arn(method_arn),
    }
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": context,
    }


def allow(method_arn: str, key: ApiKey) -> dict[str, Any]:
    """An Allow whose context names the key (the access log's keyId and tenant)."""
    context = {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "scopes": " ".join(key.policy.scopes),  # empty: every endpoint
    }
    return _policy(key.key_id, "Allow", method_arn, context)


def _json_safe(text: str) -> str:
    # The ACCESS_DENIED template puts the message between JSON quotes as it is.
    return text.replace("\\", "/").replace('"', "'")


def deny(method_arn: str, error: EdgerouteError) -> dict[str, Any]:
    """A Deny whose context is the OpenAI error the caller gets (as API Gateway's 403)."""
    context = {
        "message": _json_safe(error.message),
        "error_type": error.error_type,
        "code": error.code or "",
    }
    return _policy("anonymous", "Deny", method_arn, context)
