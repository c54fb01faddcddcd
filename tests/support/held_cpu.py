"""``one_cpu_held()``: an actor holding one CPU of the connected Ray while the block runs, as
another job on a shared cluster would. It only reserves; it runs nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ray


@ray.remote(num_cpus=1)
class _Holder:
    def ready(self) -> bool:
        return True


@contextlib.contextmanager
def one_cpu_held() -> Iterator[None]:
    holder = _Holder.remote()
    try:
        ray.get(holder.ready.remote(), timeout=60)
        yield
    finally:
        ray.kill(holder)
