"""Run Lambda handlers locally through the real ``awslambdaric`` runtime client.

``invoke`` runs one event in a fresh (cold) environment; ``LocalFunction`` keeps an
environment warm across events; ``load_function`` reads a function's handler, code
location, limits and environment from a SAM template.
"""

from edgeroute.tools.localinvoke.emulator import RuntimeApiEmulator
from edgeroute.tools.localinvoke.runner import InvocationResult, LocalFunction, invoke
from edgeroute.tools.localinvoke.template import (
    FunctionSpec,
    TemplateError,
    list_functions,
    load_function,
)

__all__ = [
    "FunctionSpec",
    "InvocationResult",
    "LocalFunction",
    "RuntimeApiEmulator",
    "TemplateError",
    "invoke",
    "list_functions",
    "load_function",
]
