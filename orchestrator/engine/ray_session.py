"""The run's Ray: joined (``RAY_ADDRESS``) or started privately on 127.0.0.1, in the background.

``ensure_ray`` connects to the cluster in ``RAY_ADDRESS`` if set, else starts a private local
Ray on loopback, every one of its processes listening on 127.0.0.1 only (sweeping what killed
earlier private Rays left, ``ray_leftovers``) with the start-up warnings a user cannot act on
silenced (``telemetry.ray_output``). ``RayStart`` runs it on a thread, so the few seconds Ray
takes to come up overlap the driver's own start-up (reading the output, counting seeds, checking
the teacher, loading dedup state); ``join`` waits for it and re-raises what it raised; ``close``
shuts down what it started. Ray is process-wide: the driver's later calls from the main thread
use the connection the thread made.
The thread that started a private Ray stays alive until ``release`` (after ``ray.shutdown``):
Ray starts its GCS and raylet with a parent-death signal, which Linux sends when the *thread*
that started them ends.

It schedules nothing and starts no actor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import ray
from ray._common.utils import get_default_ray_temp_dir
from ray._private import ray_constants

from orchestrator.engine import ray_leftovers
from orchestrator.telemetry.ray_output import quiet_private_start

__all__ = ["RayStart", "ensure_ray"]


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Connect to RAY_ADDRESS if set, else start a local Ray on loopback. True if started here."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # address="local": a private Ray, never a cluster some other process started here
        # (RAY_ADDRESS=auto joins that one; Ray Jobs set RAY_ADDRESS for their drivers).
        # Agents and session dirs of earlier private Rays whose driver was killed go first.
        ray_leftovers.sweep(get_default_ray_temp_dir())
        with quiet_private_start(), _loopback_only():  # ray_output.py; nothing off this host
            ray.init(
                address="local", num_cpus=num_cpus, include_dashboard=False,
                _node_ip_address="127.0.0.1", **kwargs,
            )  # fmt: skip
        ray_leftovers.record(ray_leftovers.current_session_dir())
    # ray.init makes SIGTERM a sys.exit; keep the caller's handler (the CLI stops like Ctrl-C
    # on it, which is what `ray job stop` sends a job's driver).
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return True


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While a private Ray starts: every process of it binds and advertises 127.0.0.1.

    ``_node_ip_address`` alone is not enough in Ray 2.60: the GCS, raylet and agents still
    listen on every interface and advertise the machine's address. Ray's own switch for a
    loopback-only node is ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ``ray`` is
    imported (here: the constant) and by the processes Ray starts (here: the environment they
    inherit). Both are restored afterwards, so a later ``RAY_ADDRESS`` run joins normally."""
    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


class RayStart:
    """``ensure_ray`` on a background thread (module docstring)."""

    def __init__(self) -> None:
        # joins a running Ray (this process's, or RAY_ADDRESS's) rather than starting one
        self.joins = ray.is_initialized() or bool(os.environ.get("RAY_ADDRESS"))
        self._started = False
        self._joined = False
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._released = threading.Event()
        # ray.init off the main thread sets no SIGTERM handler and says so: the CLI has its own
        logging.getLogger("ray._private.worker").addFilter(_no_sigterm_note)
        self._thread = threading.Thread(target=self._start, name="mathsynth-ray", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._started = ensure_ray()
        except BaseException as err:  # handed to the caller in join()
            self._error = err
        finally:
            self._ready.set()
        if self._started:  # Ray's processes die with the thread that started them
            self._released.wait()

    @property
    def ready(self) -> bool:
        """Ray is up (or failed to come up): ``join`` returns at once."""
        return self._ready.is_set()

    def join(self) -> bool:
        """Wait for Ray; True if this process started it (and so must shut it down, then
        ``release``)."""
        self._ready.wait()
        self._joined = True
        logging.getLogger("ray._private.worker").removeFilter(_no_sigterm_note)
        if self._error is not None:
            raise self._error
        return self._started

    def release(self) -> None:
        """After ``ray.shutdown``: the starting thread may end."""
        self._released.set()

    def close(self) -> None:
        """Shut down the Ray this start started (waiting for the start first, when the run
        stopped before it used Ray), then let the starting thread end. Idempotent: nothing is
        shut down twice, and a Ray this process joined is left running."""
        try:
            started = self.join()
        except BaseException:  # noqa: BLE001 (the run is failing for another reason already)
            started = False
        if started and ray.is_initialized():
            ray.shutdown()
        self.release()


def _no_sigterm_note(record: logging.LogRecord) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()
