"""Reports what the Lambda context and environment look like inside the runtime."""

import os
import sys
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    client = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "client_custom": client.custom if client is not None else None,
        "cognito_identity_id": context.identity.cognito_identity_id,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "env": {
            k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LAMBDA_", "_H", "EDGE"))
        },
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "argv": sys.argv,
    }
