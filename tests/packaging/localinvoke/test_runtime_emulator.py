"""Lambda handlers run through the real awslambdaric against the local Runtime API."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from pathlib import Path

import pytest

from edgeroute.tools.localinvoke import LocalFunction, RuntimeApiEmulator, invoke
from edgeroute.tools.localinvoke.emulator import Invocation, Posted, RuntimeEvent

HANDLERS = [Path(__file__).parent / "handlers"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_echo_cold_invocation_records_init_and_frames_logs() -> None:
    result = invoke("echo_fn.handler", {"model": "m1"}, code_dirs=HANDLERS, env={})

    assert result.ok and result.function_error is None and result.error is None
    assert result.payload == {"event": {"model": "m1"}, "calls": 1}
    assert result.cold
    assert 0 < result.init_ms < 10_000
    assert result.duration_ms > 0
    rid = result.request_id
    assert f"START RequestId: {rid} Version: $LATEST\necho {{'model': 'm1'}}\nEND" in result.logs
    assert re.search(rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms.*Init Duration", result.logs)


def test_string_and_list_events_round_trip() -> None:
    with LocalFunction("echo_fn.handler", code_dirs=HANDLERS) as fn:
        assert fn.invoke("hello").payload["event"] == "hello"
        assert fn.invoke([1, 2]).payload["event"] == [1, 2]


def test_context_and_environment_match_lambda() -> None:
    result = invoke(
        "context_fn.handler",
        {},
        code_dirs=HANDLERS,
        env={"EDGEROUTE_TABLE": "keys", "_HANDLER": "hijack", "AWS_LAMBDA_RUNTIME_API": "x:1"},
        timeout_s=7,
        function_name="edgeroute-api",
        memory_mb=1024,
        region="eu-west-1",
    )
    out = result.payload
    assert out["aws_request_id"] == result.request_id
    assert 0 < out["remaining_ms"] <= 7000
    assert out["function_name"] == "edgeroute-api"
    assert out["memory_limit_in_mb"] == "1024"
    assert out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"].startswith("arn:aws:lambda:eu-west-1:")
    assert out["invoked_function_arn"].endswith(":function:edgeroute-api")
    assert out["log_group_name"] == "/aws/lambda/edgeroute-api"
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", out["trace_id"]
    )
    env = out["env"]
    task_root = str(HANDLERS[0].resolve())
    assert env["LAMBDA_TASK_ROOT"] == task_root == out["cwd"]
    assert env["_HANDLER"] == "context_fn.handler"  # reserved: the caller cannot override
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].count("[$LATEST]") == 1
    assert env["EDGEROUTE_TABLE"] == "keys"
    assert out["argv"][1:] == ["context_fn.handler"]
    assert out["argv"][0].endswith("awslambdaric/__main__.py")


def test_client_context_and_cognito_identity_reach_the_context() -> None:
    with LocalFunction("context_fn.handler", code_dirs=HANDLERS) as fn:
        result = fn.invoke(
            {},
            client_context={"custom": {"tenant": "t1"}},
            cognito_identity={"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"},
        )
    assert result.payload["client_custom"] == {"tenant": "t1"}
    assert result.payload["cognito_identity_id"] == "id-1"


def test_warm_invocations_reuse_the_process() -> None:
    with LocalFunction("echo_fn.handler", code_dirs=HANDLERS) as fn:
        first = fn.invoke({"i": 0})
        pid = fn.pid
        rest = [fn.invoke({"i": i}) for i in range(1, 6)]

        assert first.cold and first.init_ms > 0
        assert all(not r.cold and r.init_ms == 0.0 for r in rest)
        assert fn.pid == pid is not None
        # Module state survives between warm invocations, as on Lambda.
        assert [r.payload["calls"] for r in [first, *rest]] == [1, 2, 3, 4, 5, 6]
        assert "Init Duration" not in rest[0].logs
        assert "{'i': 0}" not in rest[0].logs and "{'i': 1}" in rest[0].logs
    assert fn.pid is None
    assert pid is not None and not _alive(pid)


def test_warm_round_trip_stays_far_below_a_delayed_ack() -> None:
    # With Nagle's algorithm in the way each runtime call waits for a delayed ACK and a
    # warm invoke costs ~90 ms; here it is well under a millisecond.
    with LocalFunction("echo_fn.handler", code_dirs=HANDLERS) as fn:
        fn.invoke({})
        times = []
        for i in range(30):
            started = time.perf_counter()
            fn.invoke({"i": i})
            times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.02


def test_handler_exception_is_an_unhandled_function_error_and_the_process_survives() -> None:
    with LocalFunction("raising_fn.handler", code_dirs=HANDLERS) as fn:
        first = fn.invoke({"key": "k1"})
        pid = fn.pid
        second = fn.invoke({"key": "k2"})

    assert first.function_error == "Unhandled"
    assert first.error == first.payload
    assert first.error is not None
    assert first.error["errorType"] == "QuotaExceededError"
    assert first.error["errorMessage"] == "quota exceeded for k1"
    assert first.error["requestId"] == first.request_id
    assert any("raising_fn.py" in line for line in first.error["stackTrace"])
    assert "[ERROR] QuotaExceededError: quota exceeded for k1\nTraceback" in first.logs
    assert second.error is not None and second.error["errorMessage"] == "quota exceeded for k2"
    assert not second.cold and pid is not None


def test_deep_traceback_with_a_large_xray_header_is_reported() -> None:
    # The X-Ray cause header of a RecursionError is well over http.server's 64 KiB limit.
    result = invoke("raising_fn.handler", {"recurse": True}, code_dirs=HANDLERS)
    assert result.error is not None and result.error["errorType"] == "RecursionError"


@pytest.mark.parametrize(
    ("handler", "error_type"),
    [
        ("import_error_fn.handler", "Runtime.ImportModuleError"),
        ("echo_fn.missing", "Runtime.HandlerNotFound"),
        ("no_dot_in_name", "Runtime.MalformedHandlerName"),
    ],
)
def test_init_failures_are_function_errors_not_hangs(handler: str, error_type: str) -> None:
    started = time.perf_counter()
    result = invoke(handler, {}, code_dirs=HANDLERS, timeout_s=30)
    assert time.perf_counter() - started < 5
    assert result.function_error == "Unhandled"
    assert result.error is not None and result.error["errorType"] == error_type
    assert result.error["requestId"] == result.request_id
    assert result.cold and result.init_ms > 0 and result.duration_ms == 0.0
    # Init output comes before START, as in CloudWatch.
    assert result.logs.index(f"[ERROR] {error_type}") < result.logs.index("START RequestId")


def test_syntax_error_in_handler_module(tmp_path: Path) -> None:
    (tmp_path / "broken_fn.py").write_text("def handler(event, context)\n    return 1\n")
    result = invoke("broken_fn.handler", {}, code_dirs=[tmp_path])
    assert result.error is not None and result.error["errorType"] == "Runtime.UserCodeSyntaxError"


def test_timeout_kills_the_environment_and_the_next_invoke_is_cold() -> None:
    with LocalFunction("sleepy_fn.handler", code_dirs=HANDLERS, timeout_s=0.5) as fn:
        fn.invoke({"sleep_s": 0})
        pid = fn.pid
        started = time.perf_counter()
        result = fn.invoke({"sleep_s": 30})
        elapsed = time.perf_counter() - started

        assert 0.5 <= elapsed < 3
        assert result.function_error == "Unhandled"
        rid = result.request_id
        assert result.error == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {rid} Error: Task timed out after 0.50 seconds",
        }
        assert 500 <= result.duration_ms < 3000
        assert "going to sleep\n" in result.logs
        assert f"Z {result.request_id} Task timed out after 0.50 seconds\nEND" in result.logs
        assert pid is not None and not _alive(pid) and fn.pid is None

        again = fn.invoke({"sleep_s": 0})
        assert again.ok and again.cold and fn.pid not in (None, pid)


def test_slow_init_times_out(tmp_path: Path) -> None:
    (tmp_path / "slow_init_fn.py").write_text(
        "import time\ntime.sleep(30)\n\ndef handler(event, context):\n    return 1\n"
    )
    started = time.perf_counter()
    result = invoke("slow_init_fn.handler", {}, code_dirs=[tmp_path], init_timeout_s=0.5)
    assert time.perf_counter() - started < 3
    assert result.error is not None and result.error["errorType"] == "Sandbox.Timedout"
    assert "Init timed out after 0.50 seconds" in result.error["errorMessage"]


def test_runtime_exit_is_reported_and_the_next_invoke_is_cold() -> None:
    with LocalFunction("crash_fn.handler", code_dirs=HANDLERS) as fn:
        result = fn.invoke({"code": 3})
        assert result.error == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {result.request_id} Error: "
            "Runtime exited with error: exit status 3",
        }
        assert "about to exit" in result.logs
        assert fn.pid is None
        assert fn.invoke({"code": 0}).cold


def test_response_over_six_megabytes_fails_like_lambda() -> None:
    result = invoke("big_fn.handler", {"bytes": 7_000_000}, code_dirs=HANDLERS)
    assert result.error is not None
    assert result.error["errorType"] == "Function.ResponseSizeTooLarge"
    ok = invoke("big_fn.handler", {"bytes": 1000}, code_dirs=HANDLERS)
    assert ok.payload == "x" * 1000


def test_request_over_six_megabytes_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match="at most"):
        invoke("echo_fn.handler", {"blob": "x" * 7_000_000}, code_dirs=HANDLERS)


def test_emulator_speaks_the_runtime_api_directly() -> None:
    events: list[RuntimeEvent] = []
    with RuntimeApiEmulator(events.append) as api:
        api.submit(
            Invocation(
                request_id="req-1",
                body=b'{"a": 1}',
                timeout_s=3,
                function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
                client_context='{"custom": {}}',
            )
        )
        conn = http.client.HTTPConnection(api.address, timeout=5)
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b'{"a": 1}'
        assert resp.headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
        assert resp.headers["Lambda-Runtime-Client-Context"] == '{"custom": {}}'
        deadline = int(resp.headers["Lambda-Runtime-Deadline-Ms"])
        assert 0 < deadline - time.time() * 1000 <= 3000

        conn.request("POST", "/2018-06-01/runtime/invocation/unknown/response", body=b"{}")
        bad = conn.getresponse()
        assert bad.status == 400 and json.loads(bad.read())["errorType"] == "InvalidRequestID"

        error = {"errorMessage": "m", "errorType": "E", "stackTrace": []}
        conn.request(
            "POST",
            "/2018-06-01/runtime/invocation/req-1/error",
            body=json.dumps(error),
            headers={"Lambda-Runtime-Function-Error-Type": "E"},
        )
        assert conn.getresponse().status == 202
        conn.close()
        address = api.address

    posted = [e for e in events if isinstance(e, Posted)]
    assert [(p.kind, p.request_id) for p in posted] == [("error", "req-1")]
    assert posted[0].error_shape() == error
    with pytest.raises(OSError):
        http.client.HTTPConnection(address, timeout=1).connect()  # server is gone
