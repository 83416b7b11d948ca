//! `Config`: the supervisor's validated configuration, built from the Python keywords.

use dramatiq_sentinel_supervisor::ConfigBuilder;
use dramatiq_sentinel_tokio::{ClientCert, Config, ConfigError, Credentials};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A validated configuration. Every invalid value raises `ValueError(message, field)`, where
/// `field` is the Rust setting's name (the Python package maps it to its keyword).
#[pyclass(frozen, name = "Config", module = "dramatiq_sentinel._native")]
pub(crate) struct NativeConfig {
    pub(crate) config: Config,
}

/// Every setting `Config` reads from text, as `(name, kind)`: the supervisor's settings table
/// (`ConfigBuilder::settings`), from which the Python package builds its lists of keywords by
/// kind (`duration`, `optional_duration`, `bool`, `integer`, `optional_integer`, ...).
#[pyfunction]
pub(crate) fn settings() -> Vec<(&'static str, &'static str)> {
    ConfigBuilder::settings()
        .map(|s| (s.name(), s.kind().as_str()))
        .collect()
}

fn invalid(e: &ConfigError) -> PyErr {
    PyValueError::new_err((e.to_string(), e.field().to_owned()))
}

fn credentials(auth: Option<(Option<String>, String)>) -> Option<Credentials> {
    auth.map(|(username, password)| Credentials { username, password })
}

#[pymethods]
impl NativeConfig {
    /// Builds a configuration from `(field, text)` settings (as `ConfigBuilder::set` reads
    /// them: durations in seconds, `off` for optional ones), credentials as
    /// `(username or None, password)`, and TLS files as PEM bytes.
    #[new]
    #[pyo3(signature = (settings, sentinel_auth=None, redis_auth=None, tls_root_cert=None, tls_client_cert=None))]
    fn new(
        settings: Vec<(String, String)>,
        sentinel_auth: Option<(Option<String>, String)>,
        redis_auth: Option<(Option<String>, String)>,
        tls_root_cert: Option<Vec<u8>>,
        tls_client_cert: Option<(Vec<u8>, Vec<u8>)>,
    ) -> PyResult<Self> {
        let mut builder = Config::builder()
            .sentinel_auth(credentials(sentinel_auth))
            .redis_auth(credentials(redis_auth))
            .tls_root_cert(tls_root_cert)
            .tls_client_cert(tls_client_cert.map(|(cert, key)| ClientCert { cert, key }));
        for (field, value) in &settings {
            builder = builder.set(field, value).map_err(|e| invalid(&e))?;
        }
        let config = builder.build().map_err(|e| invalid(&e))?;
        Ok(Self { config })
    }

    /// `hold_timeout` in seconds.
    #[getter]
    fn hold_timeout(&self) -> f64 {
        self.config.hold_timeout().as_secs_f64()
    }

    /// `command_timeout` in seconds, or `None`.
    #[getter]
    fn command_timeout(&self) -> Option<f64> {
        self.config.command_timeout().map(|d| d.as_secs_f64())
    }

    /// `connect_timeout` in seconds.
    #[getter]
    fn connect_timeout(&self) -> f64 {
        self.config.connect_timeout().as_secs_f64()
    }

    /// `stop_grace` in seconds.
    #[getter]
    fn stop_grace(&self) -> f64 {
        self.config.stop_grace().as_secs_f64()
    }

    /// `startup_timeout` in seconds, or `None`.
    #[getter]
    fn startup_timeout(&self) -> Option<f64> {
        self.config.startup_timeout().map(|d| d.as_secs_f64())
    }

    /// `db`.
    #[getter]
    fn db(&self) -> u32 {
        self.config.db()
    }

    /// `tls`.
    #[getter]
    fn tls(&self) -> bool {
        self.config.tls()
    }

    /// `service_name`.
    #[getter]
    fn service_name(&self) -> &str {
        self.config.service_name()
    }

    /// The configured sentinels as `(host, port)`.
    #[getter]
    fn sentinels(&self) -> Vec<(String, u16)> {
        self.config
            .sentinels()
            .iter()
            .map(|a| (a.host().to_owned(), a.port()))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.config)
    }
}
