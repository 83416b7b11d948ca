//! Conversions of the supervisor's events and status into Python dicts.

use dramatiq_sentinel_supervisor::{EventLevel, FieldValue};
use dramatiq_sentinel_tokio::{Addr, Event, NodeStatus, Status};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `{"name", "level", "message", "fields": {...}}` of one event, from its description;
/// `level` is a Python logging level name (`DEBUG`, `INFO`, `WARNING`, `ERROR`); in `fields`,
/// addresses are `"host:port"`, durations (keys ending in `_ms`) floats of milliseconds, absent
/// values `None`.
pub(crate) fn event<'py>(py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyDict>> {
    let record = event.describe();
    let dict = PyDict::new(py);
    dict.set_item("name", record.name)?;
    dict.set_item(
        "level",
        match record.level {
            EventLevel::Debug => "DEBUG",
            EventLevel::Warn => "WARNING",
            EventLevel::Error => "ERROR",
            _ => "INFO",
        },
    )?;
    dict.set_item("message", record.message)?;
    let fields = PyDict::new(py);
    for (key, value) in &record.fields {
        match value {
            FieldValue::Text(t) => fields.set_item(*key, t)?,
            FieldValue::Addr(a) => fields.set_item(*key, a.to_string())?,
            FieldValue::Duration(_) => fields.set_item(*key, value.millis())?,
            FieldValue::Int(n) => fields.set_item(*key, *n)?,
            _ => fields.set_item(*key, py.None())?,
        }
    }
    dict.set_item("fields", fields)?;
    Ok(dict)
}

fn addr(a: &Addr) -> (String, u16) {
    (a.host().to_owned(), a.port())
}

fn node<'py>(py: Python<'py>, n: &NodeStatus) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("addr", addr(&n.addr))?;
    dict.set_item("announced", addr(&n.announced))?;
    dict.set_item("flags", n.flags.clone())?;
    dict.set_item("healthy", n.is_healthy())?;
    dict.set_item("fields", n.fields.clone())?;
    Ok(dict)
}

/// The status as a dict: `service`, `in_use`, `fenced`, `source`, `master`, `replicas`,
/// `sentinels` (each node: `addr`, `announced`, `flags`, `healthy`, `fields`), `quorum`
/// (`reachable`, `message`), `unreachable` (`[(addr, why)]`).
pub(crate) fn status<'py>(py: Python<'py>, s: &Status) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("service", &s.service)?;
    dict.set_item("in_use", s.in_use.as_ref().map(addr))?;
    dict.set_item("fenced", s.fenced)?;
    dict.set_item("source", addr(&s.source))?;
    dict.set_item("master", node(py, &s.master)?)?;
    let replicas: PyResult<Vec<_>> = s.replicas.iter().map(|n| node(py, n)).collect();
    dict.set_item("replicas", replicas?)?;
    let sentinels: PyResult<Vec<_>> = s.sentinels.iter().map(|n| node(py, n)).collect();
    dict.set_item("sentinels", sentinels?)?;
    let quorum = PyDict::new(py);
    quorum.set_item("reachable", s.quorum.reachable)?;
    quorum.set_item("message", &s.quorum.message)?;
    dict.set_item("quorum", quorum)?;
    let unreachable: Vec<((String, u16), String)> = s
        .unreachable
        .iter()
        .map(|(a, why)| (addr(a), why.clone()))
        .collect();
    dict.set_item("unreachable", unreachable)?;
    Ok(dict)
}
