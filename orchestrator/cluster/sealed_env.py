"""Secrets for a Ray job, sealed with the cluster's auth token so Ray never logs them in clear.

Why: a Ray job's ``runtime_env["env_vars"]`` is written verbatim into every node's
``runtime_env_agent.log`` and shown by ``ray job list``. ``mathsynth submit`` therefore sends
each secret (the teacher API key, ``--env-var`` values) as ``MATHSYNTH_SEALED_<NAME>``: a
Fernet token (AES + HMAC, from ``cryptography``) under a key derived from the Ray auth token.
Whoever holds that token can already run code on the cluster, so sealing with it hides nothing
from them and everything from a log reader. ``mathsynth run`` calls ``unseal_environ`` first:
it reads the cluster token the way Ray does (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
``~/.ray/auth_token``), puts the clear values in its own ``os.environ`` (the driver only) and
drops the sealed names.

What it does NOT do: manage secrets at rest (use your cloud's secret store and the nodes'
environment for that), or protect anything on a cluster without token authentication —
``ray_auth_token`` returns None there and ``seal`` refuses.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, MutableMapping

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "MATHSYNTH_SEALED_"
_CONTEXT = b"mathsynth sealed env v1\0"


class SealError(RuntimeError):
    """A secret cannot be sealed or unsealed (no cluster token, or a different one)."""


def ray_auth_token() -> str | None:
    """The Ray auth token this process would send or accept, found the way Ray finds it."""
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    if not loader.has_token(ignore_auth_mode=True):
        return None
    return str(loader.get_raw_token(ignore_auth_mode=True)).strip() or None


def _fernet(token: str) -> Fernet:
    digest = hashlib.sha256(_CONTEXT + token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(values: Mapping[str, str], token: str | None) -> dict[str, str]:
    """``{MATHSYNTH_SEALED_<NAME>: ciphertext}`` for each value, sealed with ``token``."""
    if not values:
        return {}
    if not token:
        raise SealError(
            "no Ray auth token here, so secrets cannot be sent sealed "
            f"({', '.join(sorted(values))}); get the cluster's token with `ray get-auth-token` "
            "on the head and set RAY_AUTH_TOKEN (or write ~/.ray/auth_token)"
        )
    box = _fernet(token)
    return {PREFIX + name: box.encrypt(value.encode()).decode() for name, value in values.items()}


def unseal_environ(
    environ: MutableMapping[str, str] | None = None, token: str | None = None
) -> list[str]:
    """Replace every ``MATHSYNTH_SEALED_<NAME>`` in ``environ`` (default ``os.environ``) by
    ``NAME`` in clear; returns the names. A name already set in clear is left as it is."""
    env = os.environ if environ is None else environ
    sealed = sorted(k for k in env if k.startswith(PREFIX))
    if not sealed:
        return []
    token = token or ray_auth_token()
    if not token:
        raise SealError(
            f"{', '.join(sealed)} arrived sealed but this node has no Ray auth token "
            "(RAY_AUTH_TOKEN or ~/.ray/auth_token); start the cluster with RAY_AUTH_MODE=token"
        )
    box = _fernet(token)
    names = []
    for key in sealed:
        name = key.removeprefix(PREFIX)
        try:
            value = box.decrypt(env.pop(key).encode()).decode()
        except InvalidToken:
            raise SealError(
                f"{key} was sealed with another Ray auth token than this cluster's; "
                "submit again with the cluster's token (`ray get-auth-token` on the head)"
            ) from None
        env.setdefault(name, value)
        names.append(name)
    return names
