"""Resource limits for one sandboxed run, and the sandbox's own error type.

``SandboxLimits`` only describes limits; ``orchestrator.sandbox.runner`` applies them. This
module does not start processes or check whether a limit can be enforced on this machine.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SandboxError(RuntimeError):
    """The sandbox cannot be used as configured (e.g. ``use_bwrap=True`` without a working
    bubblewrap, or no free sandbox uid). Raised by the sandbox itself, never for the program's
    own failures, which are reported in ``ExecResult.status``."""


class SandboxLimits(BaseModel):
    """Limits applied to every process of one sandboxed run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time_s: float = Field(default=5.0, gt=0)
    """The whole process tree is killed after this many seconds."""
    cpu_time_s: int = Field(default=5, ge=1)
    """RLIMIT_CPU per process (SIGXCPU at the limit, SIGKILL a second later)."""
    memory_mb: int = Field(default=512, ge=16)
    """RLIMIT_AS (address space) per process."""
    max_processes: int = Field(default=16, ge=1)
    """Processes (threads count too) the sandboxed program may have at once."""
    max_output_bytes: int = Field(default=65536, ge=0)
    """stdout and stderr are each truncated to this many bytes."""
    max_file_mb: int = Field(default=16, ge=0)
    """RLIMIT_FSIZE: the largest file the program may write."""
    network: bool = False
    """False: no network at all (needs bubblewrap; the fallback cannot isolate the network)."""
    use_bwrap: bool | None = None
    """None: use bubblewrap when it works on this machine; True: require it; False: never."""
