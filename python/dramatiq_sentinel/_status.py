"""The supervisor's status in the original middleware's dict shapes (plus quorum)."""

from __future__ import annotations

from typing import Any


def _entry(node: dict[str, Any], role: str | None) -> dict[str, Any]:
    host, port = node["addr"]
    fields = node["fields"]
    entry = {
        "host": host,
        "port": port,
        "status": "available" if node["healthy"] else "unavailable",
        "last_ok_ping_reply": fields.get("last-ok-ping-reply"),
        "flags": ",".join(node["flags"]),
        "announced": "%s:%d" % tuple(node["announced"]),
    }
    if role is not None:
        entry["role"] = role
    return entry


def hosts(status: dict[str, Any]) -> dict[str, Any]:
    """`{"total_hosts": "a/n", "hosts_status": [...], "quorum": {...}}`: the master, then the
    replicas, as the first answering sentinel reports them."""
    entries = [_entry(status["master"], "master")]
    entries += [_entry(r, "replica") for r in status["replicas"]]
    available = sum(e["status"] == "available" for e in entries)
    return {
        "total_hosts": f"{available}/{len(entries)}",
        "hosts_status": entries,
        "quorum": dict(status["quorum"]),
    }


def sentinels(status: dict[str, Any]) -> dict[str, Any]:
    """`{"total_sentinels": "a/n", "sentinels_status": [...], "quorum": {...}}`: the sentinel
    that answered, the others it knows, and those that did not answer."""
    host, port = status["source"]
    entries = [
        {"host": host, "port": port, "status": "available", "last_ok_ping_reply": "0",
         "flags": "sentinel", "announced": f"{host}:{port}"}
    ]
    entries += [_entry(s, None) for s in status["sentinels"]]
    known = {(e["host"], e["port"]) for e in entries}
    for (h, p), why in status["unreachable"]:
        if (h, p) not in known:
            entries.append({"host": h, "port": p, "status": "unavailable", "error": why})
    available = sum(e["status"] == "available" for e in entries)
    return {
        "total_sentinels": f"{available}/{len(entries)}",
        "sentinels_status": entries,
        "quorum": dict(status["quorum"]),
    }
