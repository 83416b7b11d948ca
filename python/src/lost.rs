//! Lost writes handed to the Python side: the supervisor's `Workers::writes_lost` becomes a
//! call of the workers object's `writes_lost(lost)`, where `lost` is a [`NativeLostWrites`]:
//! the old and new master, the commands read back from the old master's backlog, and
//! `execute(args)`, which runs one command on the new master through the connection the
//! supervisor opened for the hand-back (the master handle's commands are held meanwhile, so a
//! redis-py client of the package would wait). The connection is closed when the call
//! returns: `execute` raises after that.

use crate::CommandFailed;
use dramatiq_sentinel_supervisor::LostWrites;
use dramatiq_sentinel_supervisor::redis::{self, Value, aio::MultiplexedConnection};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::{Mutex, MutexGuard, PoisonError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lost writes of one switch (`old`, `new`, `commands`) and `execute(args)` on the new
/// master, valid during the `writes_lost` call only.
#[pyclass(frozen, name = "LostWrites", module = "dramatiq_sentinel._native")]
pub(crate) struct NativeLostWrites {
    old: String,
    new: String,
    commands: Vec<(Option<u32>, Vec<Vec<u8>>)>,
    connection: Mutex<Option<MultiplexedConnection>>,
    handle: tokio::runtime::Handle,
}

impl NativeLostWrites {
    pub(crate) fn of(lost: LostWrites, handle: tokio::runtime::Handle) -> Self {
        let LostWrites {
            old,
            new,
            commands,
            connection,
            ..
        } = lost;
        Self {
            old: old.to_string(),
            new: new.to_string(),
            commands: commands.into_iter().map(|c| (c.db, c.args)).collect(),
            connection: Mutex::new(Some(connection)),
            handle,
        }
    }

    /// Drops the connection (the hand-back is over).
    pub(crate) fn close(&self) {
        lock(&self.connection).take();
    }
}

/// A reply as a Python value: nil `None`, integers `int`, bulk strings `bytes`, status
/// replies `str`, arrays `list`, maps `dict`; an error inside an array (a script's or a
/// transaction's) is an instance of `CommandFailed`, not raised.
fn to_python(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Nil => py.None(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::BulkString(b) => PyBytes::new(py, &b).into_any().unbind(),
        Value::SimpleString(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Okay => "OK".into_pyobject(py)?.into_any().unbind(),
        Value::Double(d) => d.into_pyobject(py)?.into_any().unbind(),
        Value::Boolean(b) => pyo3::types::PyBool::new(py, b)
            .to_owned()
            .into_any()
            .unbind(),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (k, v) in pairs {
                dict.set_item(to_python(py, k)?, to_python(py, v)?)?;
            }
            dict.into_any().unbind()
        }
        Value::Attribute { data, .. } => to_python(py, *data)?,
        Value::ServerError(e) => CommandFailed::new_err(format!("{e:?}"))
            .into_value(py)
            .into_any(),
        other => format!("{other:?}").into_pyobject(py)?.into_any().unbind(),
    })
}

#[pymethods]
impl NativeLostWrites {
    /// The master the writes were acknowledged by (`host:port`).
    #[getter]
    fn old(&self) -> &str {
        &self.old
    }

    /// The new master (`host:port`).
    #[getter(new)]
    fn new_master(&self) -> &str {
        &self.new
    }

    /// The commands, in order: `[(db or None, [arg bytes, ...]), ...]` (`MULTI` / `EXEC`
    /// kept; `db` is `None` before the stream read back selected one).
    #[getter]
    fn commands<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (db, args) in &self.commands {
            let args: Vec<Bound<'py, PyBytes>> = args.iter().map(|a| PyBytes::new(py, a)).collect();
            list.append((*db, args))?;
        }
        Ok(list)
    }

    /// Runs one command (`[b"EVAL", script, ...]`) on the new master and returns its reply
    /// (GIL released while waiting; the connection's timeout is `command_timeout`). Raises
    /// `CommandFailed` on an error reply, a broken connection, or once the hand-back is over.
    fn execute(&self, py: Python<'_>, args: Vec<Vec<u8>>) -> PyResult<Py<PyAny>> {
        let Some(mut connection) = lock(&self.connection).clone() else {
            return Err(CommandFailed::new_err(
                "dramatiq-sentinel: the hand-back of lost writes is over; its connection is closed",
            ));
        };
        if args.is_empty() {
            return Err(CommandFailed::new_err(
                "dramatiq-sentinel: no command given",
            ));
        }
        let mut cmd = redis::Cmd::new();
        for arg in &args {
            cmd.arg(arg.as_slice());
        }
        let handle = self.handle.clone();
        let reply = py.detach(move || {
            handle.block_on(async move { cmd.query_async::<Value>(&mut connection).await })
        });
        match reply {
            Ok(value) => to_python(py, value),
            Err(e) => Err(CommandFailed::new_err(format!(
                "dramatiq-sentinel: `{}` on {}: {e}",
                String::from_utf8_lossy(&args[0]),
                self.new
            ))),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "LostWrites(old={:?}, new={:?}, commands={})",
            self.old,
            self.new,
            self.commands.len()
        )
    }
}
