//! Which deployment to talk to, and how: the options `status` and `watch` share (sentinels,
//! service, credentials, TLS, any supervisor setting), and the credential and certificate
//! helpers the drill uses too.

use crate::error::CliError;
use dramatiq_sentinel_supervisor::{ClientCert, Config, ConfigBuilder, Credentials};
use std::path::{Path, PathBuf};

/// Environment variable read for the sentinels' password when `--sentinel-password` is not given.
pub const SENTINEL_PASSWORD_ENV: &str = "DRAMATIQ_SENTINEL_SENTINEL_PASSWORD";
/// Environment variable read for the data nodes' password when `--redis-password` is not given.
pub const REDIS_PASSWORD_ENV: &str = "DRAMATIQ_SENTINEL_REDIS_PASSWORD";

/// The options text of the deployment options, shared by the `status` and `watch` help.
pub(crate) const TARGET_HELP: &str = "\
DEPLOYMENT
    --sentinel HOST:PORT      a sentinel; repeat it for each one (or --sentinels H:P,H:P,...)
    --service NAME            the monitored master name (required)
    --sentinel-password PW    password for the sentinels (or DRAMATIQ_SENTINEL_SENTINEL_PASSWORD)
    --sentinel-user NAME      ACL user for the sentinels (needs a password)
    --redis-password PW       password for the data nodes (or DRAMATIQ_SENTINEL_REDIS_PASSWORD)
    --redis-user NAME         ACL user for the data nodes (needs a password)
    --tls                     TLS for every connection, trusting the system's CAs
    --tls-ca FILE             TLS, trusting the CA certificates in FILE (PEM) instead
    --tls-cert FILE           TLS, presenting this client certificate (PEM; needs --tls-key)
    --tls-key FILE            the client certificate's private key (PEM)
    --NAME VALUE              any other supervisor setting, dashes for underscores, e.g.
                              --query-timeout 0.5 --connect-timeout 1 --nat A:P=B:P,...
                              (--set NAME=VALUE does the same); invalid values are rejected
                              naming the field
";

/// Where the deployment is and how to reach it, as the command line gives it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Sentinel addresses (`HOST:PORT`), in command-line order.
    pub sentinels: Vec<String>,
    /// The monitored master name.
    pub service: Option<String>,
    /// `--sentinel-password`.
    pub sentinel_password: Option<String>,
    /// `--sentinel-user`.
    pub sentinel_user: Option<String>,
    /// `--redis-password`.
    pub redis_password: Option<String>,
    /// `--redis-user`.
    pub redis_user: Option<String>,
    /// TLS for every connection (`--tls`, or implied by a certificate file).
    pub tls: bool,
    /// CA certificates to trust (PEM file).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM file).
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM file).
    pub tls_key: Option<PathBuf>,
    /// Other supervisor settings, `(field, value)` for `ConfigBuilder::set`, in order.
    pub settings: Vec<(String, String)>,
}

/// What a command line of `status` or `watch` asks for.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    /// Run with these options and the switches given (from the command's own list).
    Run(Box<Target>, Vec<&'static str>),
    /// Print the command's help.
    Help,
}

pub(crate) fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// Whether `field` names a setting of the supervisor's configuration: a row of its settings
/// table ([`ConfigBuilder::settings`]), the one list of them.
pub(crate) fn is_setting(field: &str) -> bool {
    ConfigBuilder::setting(field).is_some()
}

/// Credentials from a password (the flag, else the first set environment variable of `envs`)
/// and an optional user; `who` is `sentinel` or `redis`, for the error.
pub(crate) fn credentials(
    who: &str,
    password: Option<String>,
    envs: &[&str],
    user: Option<String>,
) -> Result<Option<Credentials>, String> {
    let password = password.or_else(|| {
        envs.iter()
            .find_map(|env| std::env::var(env).ok().filter(|p| !p.is_empty()))
    });
    match (password, user) {
        (Some(password), username) => Ok(Some(Credentials { username, password })),
        (None, Some(_)) => Err(format!(
            "--{who}-user needs --{who}-password (or {})",
            envs.join(" or ")
        )),
        (None, None) => Ok(None),
    }
}

/// Reads the PEM file of `flag`, if given; the error names the flag, the file and the cause.
pub(crate) fn read_pem(flag: &str, path: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    path.map(|p| std::fs::read(p).map_err(|e| format!("{flag}: cannot read {}: {e}", p.display())))
        .transpose()
}

/// The client certificate of `--tls-cert` and `--tls-key`, if both are given.
pub(crate) fn client_cert(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<ClientCert>, String> {
    Ok(
        match (read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?) {
            (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
            _ => None,
        },
    )
}

impl Target {
    /// The supervisor configuration these options describe; an invalid value is rejected
    /// naming the field (exit status 2).
    pub fn config(&self) -> Result<Config, CliError> {
        Ok(self.builder(&[])?.build()?)
    }

    /// The configuration builder of these options, with `defaults` (`(field, value)` for
    /// `ConfigBuilder::set`) applied unless the command line sets the same field.
    pub fn builder(&self, defaults: &[(&str, &str)]) -> Result<ConfigBuilder, CliError> {
        let sentinel_auth = credentials(
            "sentinel",
            self.sentinel_password.clone(),
            &[SENTINEL_PASSWORD_ENV],
            self.sentinel_user.clone(),
        )
        .map_err(usage)?;
        let redis_auth = credentials(
            "redis",
            self.redis_password.clone(),
            &[REDIS_PASSWORD_ENV],
            self.redis_user.clone(),
        )
        .map_err(usage)?;
        let mut builder = Config::builder()
            .sentinels(&self.sentinels)
            .sentinel_auth(sentinel_auth)
            .redis_auth(redis_auth)
            .tls(self.tls)
            .tls_root_cert(read_pem("--tls-ca", self.tls_ca.as_deref()).map_err(usage)?)
            .tls_client_cert(
                client_cert(self.tls_cert.as_deref(), self.tls_key.as_deref()).map_err(usage)?,
            );
        if let Some(service) = &self.service {
            builder = builder.service_name(service.clone());
        }
        for (field, value) in defaults {
            if !self.settings.iter().any(|(f, _)| f == field) {
                builder = builder.set(field, value)?;
            }
        }
        for (field, value) in &self.settings {
            builder = builder.set(field, value)?;
        }
        Ok(builder)
    }
}

/// Parses the arguments of `status` or `watch` (after the command name): the deployment
/// options, `-h`/`--help`, and the command's own `switches` (flags without a value).
pub(crate) fn parse<I: IntoIterator<Item = String>>(
    args: I,
    switches: &[&'static str],
) -> Result<Parsed, CliError> {
    let mut t = Target::default();
    let mut on = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Parsed::Help);
        }
        if let Some(&switch) = switches.iter().find(|s| **s == flag) {
            if inline.is_some() {
                return Err(usage(format!("{flag} takes no value")));
            }
            on.push(switch);
            continue;
        }
        if flag == "--tls" {
            if inline.is_some() {
                return Err(usage("--tls takes no value"));
            }
            t.tls = true;
            continue;
        }
        if !flag.starts_with("--") || flag.len() == 2 {
            return Err(usage(format!("unexpected argument `{arg}`")));
        }
        let field = flag.trim_start_matches("--").replace('-', "_");
        const OWN: &[&str] = &[
            "--sentinel",
            "--sentinels",
            "--service",
            "--sentinel-password",
            "--sentinel-user",
            "--redis-password",
            "--redis-user",
            "--tls-ca",
            "--tls-cert",
            "--tls-key",
            "--set",
        ];
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| {
                if OWN.contains(&flag.as_str()) || is_setting(&field) {
                    usage(format!("{flag} needs a value"))
                } else {
                    usage(format!("unknown option {flag}"))
                }
            })?,
        };
        match flag.as_str() {
            "--sentinel" | "--sentinels" => t.sentinels.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "--service" | "--service-name" => t.service = Some(value),
            "--sentinel-password" => t.sentinel_password = Some(value),
            "--sentinel-user" => t.sentinel_user = Some(value),
            "--redis-password" => t.redis_password = Some(value),
            "--redis-user" => t.redis_user = Some(value),
            "--tls-ca" => t.tls_ca = Some(value.into()),
            "--tls-cert" => t.tls_cert = Some(value.into()),
            "--tls-key" => t.tls_key = Some(value.into()),
            "--set" => {
                let (field, v) = value
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--set: `{value}` is not NAME=VALUE")))?;
                t.settings
                    .push((field.trim().replace('-', "_"), v.to_owned()));
            }
            _ if is_setting(&field) => t.settings.push((field, value)),
            _ => return Err(usage(format!("unknown option {flag}"))),
        }
    }
    if t.tls_ca.is_some() || t.tls_cert.is_some() || t.tls_key.is_some() {
        t.tls = true;
    }
    if t.tls_cert.is_some() != t.tls_key.is_some() {
        return Err(usage("--tls-cert and --tls-key go together"));
    }
    if t.sentinels.is_empty() && !t.settings.iter().any(|(f, _)| f == "sentinels") {
        return Err(usage(
            "--sentinel HOST:PORT is required (once per sentinel)",
        ));
    }
    if t.service.is_none() && !t.settings.iter().any(|(f, _)| f == "service_name") {
        return Err(usage(
            "--service NAME is required (the monitored master name)",
        ));
    }
    Ok(Parsed::Run(Box::new(t), on))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(Target, Vec<&'static str>), String> {
        match parse(args.iter().map(|s| (*s).to_owned()), &["--json"]) {
            Ok(Parsed::Run(t, on)) => Ok((*t, on)),
            Ok(Parsed::Help) => Err("help".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn sentinels_settings_and_switches() {
        let (t, on) = run(&[
            "--sentinel",
            "a:1",
            "--sentinel=b:2",
            "--sentinels",
            "c:3,d:4",
            "--service",
            "svc",
            "--query-timeout",
            "2",
            "--set",
            "connect-timeout=3",
            "--json",
        ])
        .expect("valid");
        assert_eq!(t.sentinels, ["a:1", "b:2", "c:3", "d:4"]);
        assert_eq!(t.service.as_deref(), Some("svc"));
        assert_eq!(
            t.settings,
            [
                ("query_timeout".into(), "2".into()),
                ("connect_timeout".into(), "3".into())
            ]
        );
        assert_eq!(on, ["--json"]);
        let config = t.config().expect("a valid configuration");
        assert_eq!(config.sentinels().len(), 4);
        assert_eq!(config.service_name(), "svc");
        let (t, _) =
            run(&["--sentinel", "a:1", "--service", "s", "--tls-ca", "x.pem"]).expect("valid");
        assert!(t.tls);
    }

    #[test]
    fn clear_errors() {
        for (args, needle) in [
            (&["--service", "s"][..], "--sentinel HOST:PORT is required"),
            (&["--sentinel", "a:1"][..], "--service NAME is required"),
            (&["--sentinel"][..], "--sentinel needs a value"),
            (
                &["--sentinel", "a:1", "--bogus", "1"][..],
                "unknown option --bogus",
            ),
            (&["--sentinel", "a:1", "--json=1"][..], "takes no value"),
            (&["--sentinel", "a:1", "stray"][..], "unexpected argument"),
            (
                &["--sentinel", "a:1", "--service", "s", "--tls-key", "k"][..],
                "--tls-cert and --tls-key go together",
            ),
        ] {
            let e = run(args).expect_err("invalid");
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert_eq!(run(&["--help"]).expect_err("help"), "help");
        let (t, _) = run(&[
            "--sentinel",
            "a:1",
            "--service",
            "s",
            "--query-timeout",
            "-1",
        ])
        .expect("parsed");
        let e = t.config().expect_err("invalid").to_string();
        assert!(e.contains("query_timeout"), "{e}");
        let (t, _) =
            run(&["--sentinel", "a:1", "--service", "s", "--redis-user", "u"]).expect("parsed");
        let e = t.config().expect_err("no password").to_string();
        assert!(e.contains("--redis-user needs --redis-password"), "{e}");
    }

    #[test]
    fn every_row_of_the_settings_table_is_a_flag_and_nothing_else_is() {
        for info in ConfigBuilder::settings() {
            assert!(is_setting(info.name()), "{}", info.name());
            if matches!(info.name(), "sentinels" | "service_name" | "tls") {
                continue; // options of their own (--sentinel, --service, --tls)
            }
            let flag = format!("--{}", info.name().replace('_', "-"));
            let (t, _) = run(&[
                "--service",
                "s",
                "--sentinel",
                "127.0.0.1:1",
                &flag,
                info.default(),
            ])
            .unwrap_or_else(|e| panic!("{flag}: {e}"));
            assert!(
                t.settings
                    .iter()
                    .any(|(f, v)| f == info.name() && v == info.default()),
                "{flag}"
            );
        }
        for wrong in ["sentinel_auth", "tls_client_cert", "bogus", ""] {
            assert!(!is_setting(wrong), "{wrong}");
        }
    }
}
