"""The ``edgeroute`` command: serve the gateway locally, manage API keys (tools/keys.py),
read the audit trail (tools/audit.py), evaluate routing and PII, invoke functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from importlib import metadata

from edgeroute.errors import ConfigError
from edgeroute.settings import Settings
from edgeroute.store import open_store
from edgeroute.tools.arguments import UsageError
from edgeroute.tools.audit import add_audit_parser
from edgeroute.tools.batch import add_batch_parser
from edgeroute.tools.deploy import add_deploy_parser
from edgeroute.tools.keys import add_keys_parser
from edgeroute.tools.usage import add_usage_parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from edgeroute.tools.serve import run_dev_server

    return run_dev_server(
        settings, host=args.host, port=args.port, local_upstream=args.local_upstream
    )


def _probe(args: argparse.Namespace, settings: Settings) -> int:
    from edgeroute.config.registry import load_registry
    from edgeroute.health.probe import probe_command
    from edgeroute.upstreams.http import set_max_connections

    set_max_connections(settings.max_connections)
    registry = load_registry(settings.registry, settings.registry_env_allow)
    return probe_command(registry, open_store(settings), ttl_s=settings.health_ttl_s)


def _eval_routing(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from edgeroute.config.policy import load_policy
    from edgeroute.config.registry import load_registry
    from edgeroute.pipeline.gateway import configure_edge
    from edgeroute.tools.eval_routing import evaluate, render

    configure_edge(settings)
    report = evaluate(
        Path(args.file),
        load_registry(args.registry or settings.registry, settings.registry_env_allow),
        load_policy(args.policy or settings.policy or None),
        output_tokens=args.output_tokens,
    )
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))
    return 0


def _eval_pii(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from edgeroute.tools.eval_pii import DEFAULT_SET, evaluate, render

    scores = evaluate(
        Path(args.file or DEFAULT_SET), args.phone_region or settings.pii_phone_region
    )
    print(render(scores))
    if args.mistakes:
        print("\n".join(scores.mistakes))
    return 0


def _invoke(args: argparse.Namespace, settings: Settings) -> int:
    from edgeroute.tools.invoke import run_invoke

    overrides: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: --env takes NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
        overrides[name] = value
    return run_invoke(
        args.function,
        args.event,
        template=args.template,
        build_dir=args.build_dir,
        env_overrides=overrides,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeroute", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgeroute {_version()}")
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help="operate a deployed CloudFormation stack: its tables and bucket from its outputs",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway on this machine (SQLite store)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--local-upstream",
        action="store_true",
        help="also start llama.cpp's server with SmolLM2-135M as the 'small' model",
    )
    serve.set_defaults(func=_serve)

    probe = sub.add_parser(
        "probe", help="read every upstream's health and queue depth into the store, once"
    )
    probe.set_defaults(func=_probe)

    evaluation = sub.add_parser(
        "eval-routing", help="run the routing policy over labelled prompts and report"
    )
    evaluation.add_argument("file", help="JSONL with prompt, task and min_tier per line")
    evaluation.add_argument("--registry", help="registry to route over (default: settings)")
    evaluation.add_argument("--policy", help="routing policy (default: settings)")
    evaluation.add_argument("--output-tokens", type=int, default=256)
    evaluation.add_argument("--json", action="store_true")
    evaluation.set_defaults(func=_eval_routing)

    eval_pii = sub.add_parser(
        "eval-pii", help="precision and recall of each PII recognizer on a labelled set"
    )
    eval_pii.add_argument("file", nargs="?", help="JSONL of text and pii (default: the repo's)")
    eval_pii.add_argument("--phone-region", help="default: EDGEROUTE_PII_PHONE_REGION")
    eval_pii.add_argument("--mistakes", action="store_true", help="list each miss and false hit")
    eval_pii.set_defaults(func=_eval_pii)

    invoke = sub.add_parser(
        "invoke",
        help="run a template.yaml function on an event under awslambdaric (no Docker)",
    )
    invoke.add_argument("function", help="the function's logical id, e.g. RouterFunction")
    invoke.add_argument("--event", required=True, help="event JSON file, or - for stdin")
    invoke.add_argument("--template", default="template.yaml")
    invoke.add_argument(
        "--build-dir", default=".aws-sam/build", help="sam build output; source tree if absent"
    )
    invoke.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    invoke.set_defaults(func=_invoke)

    add_keys_parser(sub)
    add_audit_parser(sub)
    add_deploy_parser(sub)
    add_usage_parser(sub)
    add_batch_parser(sub)
    return parser


def _version() -> str:
    """The installed package's version (pyproject.toml's, through the package metadata)."""
    try:
        return metadata.version("edgeroute")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


_REGION = "AWS_DEFAULT_REGION"


def _environment_failure(exc: Exception) -> str | None:
    """The one-line reason for a failure of the machine's configuration rather than of
    edgeroute (no AWS credentials or region, an unreachable store, an unwritable
    file), or None for a bug, which keeps its traceback."""
    # botocore is only loaded when a command used AWS; never imported here for SQLite.
    aws = sys.modules.get("botocore.exceptions")
    if aws is not None and isinstance(exc, ValueError) and os.environ.get(_REGION) == "":
        # botocore takes the empty value for a region named '' and fails on the URL it
        # makes of it (https://dynamodb..amazonaws.com), whichever client comes first.
        return (
            f"{_REGION} is set but empty: set it to the stack's region "
            f"({_REGION}=us-east-1) or unset it"
        )
    if aws is not None and isinstance(exc, aws.BotoCoreError | aws.ClientError):
        return (
            f"AWS: {exc} (check AWS_REGION, the credentials, and the stack or "
            "EDGEROUTE_TABLE_* names)"
        )
    if isinstance(exc, sqlite3.Error):
        return f"the SQLite store: {exc} (check EDGEROUTE_SQLITE_PATH)"
    if isinstance(exc, OSError):
        return str(exc)
    return None


def _fail(message: str) -> int:
    print("error: " + "; ".join(line.strip() for line in message.splitlines()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.stack:
            from edgeroute.tools.stack import stack_settings

            settings = stack_settings(settings, args.stack)
        result = args.func(args, settings)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except (ConfigError, UsageError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        reason = _environment_failure(exc)
        if reason is None:
            raise
        return _fail(reason)
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
