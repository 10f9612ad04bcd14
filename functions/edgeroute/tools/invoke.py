"""``edgeroute invoke``: run one function of template.yaml on one event, as Lambda would.

The same events as ``sam local invoke``, without Docker: the function's handler,
timeout, memory and environment come from the template (``localinvoke.load_function``),
the code from ``sam build``'s output when there is one (else the source tree), and the
handler runs under the real ``awslambdaric`` against a local Runtime API emulator.

Template values that only exist in a deployed stack are replaced from the caller's
environment: ``EDGEROUTE_TABLE_*`` name local tables (``!Ref KeysTable`` would
otherwise be the placeholder ``KeysTable``), every other ``EDGEROUTE_*`` variable set
by the caller wins over the template's, and ``AWS_ENDPOINT_URL*`` and credentials pass
through to the runtime. Third-party dependencies come from the interpreter running
this command (Lambda's come from the layers, built for Lambda's Linux and Python);
variables naming /opt paths (layer contents, e.g. the edge models) point at the built
layers instead.
With no tables named at all, the function runs on local stand-ins instead
(tools/invoke_local.py: the SQLite store, the local registry, the development key).
Like ``sam local invoke``: the payload goes to stdout, logs to stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from edgeroute.settings import Settings
from edgeroute.store.tables import TableNames
from edgeroute.tools import invoke_local
from edgeroute.tools.localinvoke import TemplateError, invoke, load_function

# Handlers that are executables for the Lambda Web Adapter, not Python functions.
_NOT_PYTHON = (".sh", ".py")


def table_resources(env: Mapping[str, str]) -> dict[str, str]:
    """Logical table ids mapped to the local names the caller gives in EDGEROUTE_TABLE_*."""
    return {
        TableNames.logical_id(role): env[TableNames.env_var(role)]
        for role in TableNames.roles()
        if env.get(TableNames.env_var(role))
    }


def function_environment(
    template_env: Mapping[str, str],
    caller_env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The template's variables, then the caller's EDGEROUTE_*, then explicit overrides."""
    env = dict(template_env)
    env.update({k: v for k, v in caller_env.items() if k.startswith("EDGEROUTE_")})
    env.update(overrides or {})
    return env


def layer_paths(env: Mapping[str, str], layer_dirs: list[Path]) -> dict[str, str]:
    """Variables naming paths under /opt (where Lambda unpacks layers) pointed at the
    built layer that holds them; ones no local layer holds are dropped, so the code's
    own default (the repository's copy) applies, as it does outside Lambda."""
    out = dict(env)
    for name, value in env.items():
        if not value.startswith("/opt/") or Path(value).exists():
            continue
        relative = value.removeprefix("/opt/")
        found = [d / relative for d in layer_dirs if (d / relative).exists()]
        if found:
            out[name] = str(found[0])
        else:
            del out[name]
    return out


def code_dir(logical_id: str, source: Path, build_dir: str | None, template: Path) -> Path:
    """``<build_dir>/<LogicalId>`` when ``sam build`` produced it, else the source tree."""
    if build_dir:
        built = Path(build_dir)
        if not built.is_absolute():
            built = template.parent / built
        if (built / logical_id).is_dir():
            return built / logical_id
    return source


def run_invoke(
    logical_id: str,
    event_path: str,
    *,
    template: str = "template.yaml",
    build_dir: str | None = ".aws-sam/build",
    env_overrides: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> int:
    """Invoke ``logical_id`` with the event in ``event_path`` (``-`` reads stdin).
    Exit status: 0 on success, 1 on a function error, 2 when it cannot be run here."""
    template_path = Path(template).resolve()
    try:
        raw = sys.stdin.read() if event_path == "-" else Path(event_path).read_text()
        event = json.loads(raw)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the event {event_path}: {exc}", file=sys.stderr)
        return 2
    caller_env = {**os.environ, **(env_overrides or {})}
    try:
        tables = table_resources(caller_env)
        spec = load_function(template_path, logical_id, resources=tables)
    except (OSError, TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if spec.handler.endswith(_NOT_PYTHON):
        print(
            f"error: {logical_id}'s handler {spec.handler} is a program for the Lambda Web "
            "Adapter, not a Python handler; serve it locally with "
            "'uvicorn edgeroute.handlers.stream:app' or 'edgeroute serve'",
            file=sys.stderr,
        )
        return 2
    if spec.code_uri is None:
        print(f"error: {logical_id} has no CodeUri in {template_path}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("awslambdaric") is None:
        print(
            "error: the Lambda runtime client (awslambdaric) is not installed: "
            "pip install -e '.[local]' (make run installs it)",
            file=sys.stderr,
        )
        return 2
    local = invoke_local.runs_locally(caller_env)
    settings = settings or Settings.from_env()
    env = dict(spec.environment)
    if local:
        env = invoke_local.without_tables(env)
        event = json.loads(invoke_local.with_dev_key(raw, settings))
    for name in spec.unresolved:
        print(f"warning: {name} left unresolved in {logical_id}'s settings", file=sys.stderr)
    code = code_dir(logical_id, spec.code_uri, build_dir, template_path)
    layers = [code.parent / str(n) for n in spec.layers if str(n).isidentifier()]
    upstream: AbstractContextManager[dict[str, str]] = (
        invoke_local.local_upstream(settings, caller_env) if local else nullcontext({})
    )
    try:
        with upstream as upstream_env:
            stand_ins = invoke_local.local_environment(settings) if local else {}
            env = function_environment(
                env, os.environ, {**stand_ins, **upstream_env, **(env_overrides or {})}
            )
            result = invoke(
                spec.handler,
                event,
                code_dirs=[code],
                env=layer_paths(env, [d for d in layers if d.is_dir()]),
                timeout_s=spec.timeout_s,
                function_name=spec.function_name,
                memory_mb=spec.memory_mb,
            )
    except RuntimeError as exc:  # the local upstream did not start
        print(f"error: {exc} (pip install -e '.[local]' installs it)", file=sys.stderr)
        return 2
    sys.stderr.write(result.logs)
    payload = result.payload if result.ok else result.error
    if isinstance(payload, bytes):  # a handler that returned something other than JSON
        print(payload.decode("utf-8", "replace"))
    else:
        print(json.dumps(payload))
    return 0 if result.ok else 1
