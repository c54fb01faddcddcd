"""Sandbox for untrusted, teacher-written Python programs (see ``runner`` for the guarantees).

Exports ``Sandbox``, ``SandboxLimits``, ``ExecResult`` and ``SandboxError``. It does not decide
what code to run or interpret the program's output.
"""

from .limits import SandboxError, SandboxLimits
from .result import ExecResult
from .runner import Sandbox

__all__ = ["ExecResult", "Sandbox", "SandboxError", "SandboxLimits"]
