"""The constructor's keywords: validated in Python where the keyword's own rules apply (types,
NaN, negative values, the original's silent clamps), turned into the Rust configuration's
text settings, and checked by the Rust side, whose errors are reported under the keyword the
user wrote. Nothing here decides anything about failovers."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _native

logger = logging.getLogger("dramatiq_sentinel")

Address = tuple[str, int]

#: The original's keywords whose Rust setting has another name.
RENAMED = {
    "socket_timeout": "query_timeout",
    "periodic_master_check": "periodic_check",
    "worker_pausing_timeout_before_exit": "pause_timeout",
}

#: Keywords that take seconds (`None` for "off" where the setting is optional).
DURATIONS = {
    "query_timeout", "connect_timeout", "command_timeout", "hold_timeout", "min_backoff",
    "max_backoff", "retry_delay", "max_retry_delay", "periodic_check", "pause_timeout",
    "stop_grace", "fence_timeout", "role_poll_interval", "health_check_interval",
    "startup_timeout", "forget_sentinel_after", "deposed_pause",
}
OPTIONAL_DURATIONS = {"command_timeout", "periodic_check", "startup_timeout", "deposed_pause"}
BOOLEANS = {
    "tls", "early_fencing", "refresh_sentinels", "drain", "startup_fail_fast", "watch_replicas",
}
INTEGERS = {"db", "max_sentinels", "jitter_seed"}
#: Keywords handled here rather than passed through as text.
SPECIAL = {
    "sentinels", "nat", "sentinel_password", "sentinel_username", "redis_password",
    "redis_username", "tls_root_cert", "tls_client_cert", "tls_client_key", "on_pause_timeout",
    "service_name", "backoff_factor",
}


def _fail(keyword: str, problem: str) -> ValueError:
    return ValueError(f"dramatiq-sentinel: invalid `{keyword}`: {problem}")


def _seconds(keyword: str, value: Any, optional: bool) -> float | None:
    if value is None:
        if optional:
            return None
        raise _fail(keyword, "must be a number of seconds, not None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(keyword, f"must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise _fail(keyword, f"{value!r} is not a finite number of seconds")
    if seconds < 0:
        raise _fail(keyword, f"{value!r} is negative")
    return seconds


def _address(keyword: str, value: Any) -> str:
    """`(host, port)` or `"host:port"` to `host:port` text (IPv6 hosts in brackets)."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise _fail(keyword, f"{value!r} is not `host:port` nor a `(host, port)` tuple")
        host = host.strip("[]")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        host, port = value
    else:
        raise _fail(keyword, f"{value!r} is not `host:port` nor a `(host, port)` tuple")
    if not isinstance(host, str) or not host:
        raise _fail(keyword, f"{value!r}: the host must be a non-empty string")
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        raise _fail(keyword, f"{value!r}: the port must be a number") from None
    if isinstance(port, bool) or not 0 < port_number < 65536:
        raise _fail(keyword, f"{value!r}: the port must be 1..65535")
    return f"[{host}]:{port_number}" if ":" in host else f"{host}:{port_number}"


def _pem(keyword: str, value: Any) -> bytes | None:
    """PEM bytes, or the contents of the file a `str`/`Path` names."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (str, Path)):
        try:
            return Path(value).read_bytes()
        except OSError as e:
            raise _fail(keyword, f"cannot read {str(value)!r}: {e}") from None
    raise _fail(keyword, f"must be PEM bytes or a file path, not {type(value).__name__}")


def _auth(keyword: str, username: Any, password: Any) -> tuple[str | None, str] | None:
    if password is None:
        if username is not None:
            raise _fail(keyword, "a username needs a password")
        return None
    if not isinstance(password, str):
        raise _fail(keyword, "must be a string")
    if username is not None and not isinstance(username, str):
        raise _fail(keyword, "the username must be a string")
    return (username, password)


class _ClientFiles:
    """redis-py reads a client certificate and key from files at every connect: PEM given as
    bytes is written to a private temporary directory, removed when the settings are
    collected or the interpreter exits; files given by path are used in place."""

    def __init__(self, cert: Any, key: Any) -> None:
        self.dir: str | None = None
        self.paths: list[str] = []
        for name, value in (("cert.pem", cert), ("key.pem", key)):
            if isinstance(value, (str, Path)):
                self.paths.append(str(value))
                continue
            if self.dir is None:
                self.dir = tempfile.mkdtemp(prefix="dramatiq-sentinel-")  # mode 0700
            path = os.path.join(self.dir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(value)
            self.paths.append(path)
        if self.dir is not None:
            self.finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)


def _ssl_kwargs(root: bytes | None, files: _ClientFiles | None) -> dict[str, Any]:
    """redis-py's TLS keywords for the broker's connections."""
    kwargs: dict[str, Any] = {}
    if root is not None:
        kwargs["ssl_ca_data"] = root.decode()
    if files is not None:
        kwargs["ssl_certfile"], kwargs["ssl_keyfile"] = files.paths
    return kwargs


def _adjust(keyword: str, value: float, floor: float, why: str) -> float:
    logger.warning(
        "dramatiq-sentinel: `%s`=%r %s; using %r (the original middleware silently did the same)",
        keyword, value, why, floor,
    )
    return floor


class Settings:
    """The validated keywords: `config` (the Rust configuration) plus what the Python side
    needs (`sentinel_auth`, `redis_auth` for clients it builds)."""

    def __init__(self, keywords: Mapping[str, Any]) -> None:
        self.keyword_of: dict[str, str] = {}
        settings: list[tuple[str, str]] = []
        kw = dict(keywords)

        for old, new in RENAMED.items():
            if old in kw and new in kw:
                raise _fail(new, f"given together with `{old}`, its older name")
            if old in kw:
                kw[new] = kw.pop(old)
                self.keyword_of[new] = old

        sentinels = kw.pop("sentinels", [("localhost", 26379)])
        if isinstance(sentinels, (str, bytes)) or not isinstance(sentinels, Iterable):
            raise _fail("sentinels", "must be a list of (host, port) tuples")
        sentinel_list = [_address("sentinels", s) for s in sentinels]
        if not sentinel_list:
            raise _fail("sentinels", "at least one sentinel is needed")
        settings.append(("sentinels", ",".join(sentinel_list)))

        service = kw.pop("service_name", "redis")
        if not isinstance(service, str):
            raise _fail("service_name", "must be a string")
        settings.append(("service_name", service))

        nat = kw.pop("nat", None) or {}
        if not isinstance(nat, Mapping):
            raise _fail("nat", "must be a dict of announced -> reachable addresses")
        rules = [f"{_address('nat', a)}={_address('nat', r)}" for a, r in nat.items()]
        if rules:
            settings.append(("nat", ",".join(rules)))

        factor = kw.pop("backoff_factor", 2.0)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or math.isnan(factor):
            raise _fail("backoff_factor", f"{factor!r} is not a number")
        if factor <= 0 or math.isinf(factor):
            raise _fail("backoff_factor", f"{factor!r} must be a finite number above 0")
        if factor < 1:
            factor = _adjust("backoff_factor", factor, 1.1, "would shrink the delay")
        settings.append(("backoff_factor", repr(float(factor))))

        policy = kw.pop("on_pause_timeout", None)
        if policy is not None:
            if not isinstance(policy, str):
                raise _fail("on_pause_timeout", "must be 'exit:<code>' or 'fail'")
            settings.append(("on_pause_timeout", policy))

        self.sentinel_auth = _auth(
            "sentinel_password", kw.pop("sentinel_username", None), kw.pop("sentinel_password", None)
        )
        self.redis_auth = _auth(
            "redis_password", kw.pop("redis_username", None), kw.pop("redis_password", None)
        )
        root = _pem("tls_root_cert", kw.pop("tls_root_cert", None))
        cert_given = kw.pop("tls_client_cert", None)
        key_given = kw.pop("tls_client_key", None)
        cert = _pem("tls_client_cert", cert_given)
        key = _pem("tls_client_key", key_given)
        if (cert is None) != (key is None):
            raise _fail("tls_client_cert", "needs both tls_client_cert and tls_client_key")
        client = (cert, key) if cert is not None and key is not None else None
        #: The client certificate's files for redis-py (temporary ones for PEM bytes).
        self.client_files = _ClientFiles(cert_given, key_given) if client is not None else None
        self.ssl_kwargs = _ssl_kwargs(root, self.client_files)

        self._durations(kw, settings)
        for name in sorted(BOOLEANS & kw.keys()):
            value = kw.pop(name)
            if not isinstance(value, bool):
                raise _fail(name, f"must be True or False, not {value!r}")
            settings.append((name, "true" if value else "false"))
        for name in sorted(INTEGERS & kw.keys()):
            value = kw.pop(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(name, f"must be an integer, not {value!r}")
            settings.append((name, str(value)))
        # Anything else goes to the Rust configuration as text; it rejects unknown names.
        for name, value in kw.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = value if isinstance(value, str) else repr(value)
            settings.append((name, text))

        self._native_args = (settings, root, client)
        self.config = self._build()

    def _build(self) -> Any:
        settings, root, client = self._native_args
        try:
            return _native.Config(settings, self.sentinel_auth, self.redis_auth, root, client)
        except ValueError as e:
            message, field = (e.args + (None,))[:2] if e.args else (str(e), None)
            keyword = self._keyword(str(field or ""))
            problem = str(message).split(f"`{field}`: ", 1)[-1]
            raise _fail(keyword, problem.replace(f"`{field}`", f"`{keyword}`")) from None

    def adopt_redis_auth(self, username: str | None, password: str) -> None:
        """Data-node credentials found on the broker's own client (its URL or keywords), when
        none were given as keywords: the supervisor verifies masters with them too."""
        self.redis_auth = _auth("redis_password", username, password)
        self.config = self._build()

    def _keyword(self, field: str) -> str:
        base = field.split("[", 1)[0].split(".", 1)[0]
        if base == "sentinel_auth":
            return "sentinel_password"
        if base == "redis_auth":
            return "redis_password"
        if base == "tls_client_cert" and field.endswith(".key"):
            return "tls_client_key"
        return self.keyword_of.get(base, base)

    def _durations(self, kw: dict[str, Any], settings: list[tuple[str, str]]) -> None:
        for name in sorted(DURATIONS & kw.keys()):
            keyword = self.keyword_of.get(name, name)
            seconds = _seconds(keyword, kw.pop(name), name in OPTIONAL_DURATIONS)
            if seconds is None:
                settings.append((name, "off"))
                continue
            if seconds == 0:
                # The original clamped these silently; zero would busy-loop or mean "never".
                floors = {"min_backoff": 1.0, "periodic_check": 0.5, "query_timeout": 0.1}
                if name not in floors:
                    raise _fail(keyword, "must be above zero")
                seconds = _adjust(keyword, 0.0, floors[name], "is zero")
            if name == "pause_timeout" and seconds < 120:
                logger.info(
                    "dramatiq-sentinel: `%s`=%r s is honoured as given (the original raised "
                    "it to 120 s)", keyword, seconds,
                )
            settings.append((name, repr(seconds)))
