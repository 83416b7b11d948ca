//! Which deployment to talk to, and how: the options `status`, `watch` and `drill` share
//! (sentinels, service, credentials, TLS, any supervisor setting), and the configuration they
//! describe.

use crate::error::CliError;
use crate::settings::Settings;
use dramatiq_sentinel_supervisor::{ClientCert, Config, ConfigBuilder, Credentials};
use std::path::{Path, PathBuf};

/// Environment variable read for the sentinels' password when `--sentinel-password` is not given.
pub const SENTINEL_PASSWORD_ENV: &str = "DRAMATIQ_SENTINEL_SENTINEL_PASSWORD";
/// Environment variable read for the data nodes' password when `--redis-password` is not given.
pub const REDIS_PASSWORD_ENV: &str = "DRAMATIQ_SENTINEL_REDIS_PASSWORD";

/// Where the passwords come from when no flag gives them: the first of these environment
/// variables that is set and not empty.
#[derive(Debug, Clone, Copy)]
pub struct PasswordEnv {
    /// For the sentinels' password.
    pub sentinel: &'static [&'static str],
    /// For the data nodes' password.
    pub redis: &'static [&'static str],
}

/// The environment variables of `status` and `watch`.
pub const PASSWORD_ENV: PasswordEnv = PasswordEnv {
    sentinel: &[SENTINEL_PASSWORD_ENV],
    redis: &[REDIS_PASSWORD_ENV],
};

/// Where the deployment is and how to reach it, as the command line gives it: the options
/// `status`, `watch` and `drill` share, and every supervisor setting.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Deployment")]
pub struct Target {
    /// A sentinel; repeat it for each one, or give a comma-separated list
    #[arg(
        long = "sentinel",
        visible_alias = "sentinels",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    pub sentinels: Vec<String>,
    /// The monitored master name (status and watch need it; the drill's default: redis)
    #[arg(long, visible_alias = "service-name", value_name = "NAME")]
    pub service: Option<String>,
    /// Password for the sentinels (else DRAMATIQ_SENTINEL_SENTINEL_PASSWORD; the drill reads
    /// DRILL_SENTINEL_PASSWORD first)
    #[arg(long, value_name = "PW")]
    pub sentinel_password: Option<String>,
    /// ACL user for the sentinels (needs a password)
    #[arg(long, value_name = "NAME")]
    pub sentinel_user: Option<String>,
    /// Password for the data nodes (else DRAMATIQ_SENTINEL_REDIS_PASSWORD; the drill reads
    /// DRILL_REDIS_PASSWORD first)
    #[arg(long, value_name = "PW")]
    pub redis_password: Option<String>,
    /// ACL user for the data nodes (needs a password)
    #[arg(long, value_name = "NAME")]
    pub redis_user: Option<String>,
    /// TLS for every connection, trusting the system's CAs (with drill --local: the deployment
    /// speaks TLS only and requires client certificates)
    #[arg(long)]
    pub tls: bool,
    /// TLS, trusting the CA certificates in FILE (PEM) instead
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// TLS, presenting this client certificate (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Every other supervisor setting, in command-line order.
    #[command(flatten)]
    pub settings: Settings,
}

/// A usage error (exit status 2).
fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// Credentials from a password (the flag, else the first set environment variable of `envs`)
/// and an optional user; `who` is `sentinel` or `redis`, for the error.
fn credentials(
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
fn read_pem(flag: &str, path: Option<&Path>) -> Result<Option<Vec<u8>>, CliError> {
    path.map(|p| {
        std::fs::read(p).map_err(|e| usage(format!("{flag}: cannot read {}: {e}", p.display())))
    })
    .transpose()
}

impl Target {
    /// The sentinels given, without blanks (`--sentinel a:1,,b:2`).
    pub fn sentinel_list(&self) -> Vec<&str> {
        self.sentinels
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether connections use TLS: `--tls`, or implied by a certificate file.
    pub fn tls(&self) -> bool {
        self.tls || self.tls_ca.is_some() || self.tls_cert.is_some()
    }

    /// Checks what `status` and `watch` need: a sentinel and the service (by their options or
    /// `--set`).
    pub fn require_deployment(&self) -> Result<(), CliError> {
        if self.sentinel_list().is_empty() && !self.settings.has("sentinels") {
            return Err(usage(
                "--sentinel HOST:PORT is required (once per sentinel)",
            ));
        }
        if self.service.is_none() && !self.settings.has("service_name") {
            return Err(usage(
                "--service NAME is required (the monitored master name)",
            ));
        }
        Ok(())
    }

    /// The supervisor configuration these options describe; an invalid value is rejected
    /// naming the option and the field (exit status 2).
    pub fn config(&self) -> Result<Config, CliError> {
        Ok(self.builder(&[], PASSWORD_ENV)?.build()?)
    }

    /// The configuration builder of these options, with `defaults` (`(field, value)` for
    /// `ConfigBuilder::set`) applied unless the command line sets the same field, and the
    /// passwords not given read from `env`.
    pub fn builder(
        &self,
        defaults: &[(&str, &str)],
        env: PasswordEnv,
    ) -> Result<ConfigBuilder, CliError> {
        let sentinel_auth = credentials(
            "sentinel",
            self.sentinel_password.clone(),
            env.sentinel,
            self.sentinel_user.clone(),
        )
        .map_err(usage)?;
        let redis_auth = credentials(
            "redis",
            self.redis_password.clone(),
            env.redis,
            self.redis_user.clone(),
        )
        .map_err(usage)?;
        let client_cert = match (
            read_pem("--tls-cert", self.tls_cert.as_deref())?,
            read_pem("--tls-key", self.tls_key.as_deref())?,
        ) {
            (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
            _ => None,
        };
        let mut builder = Config::builder()
            .sentinel_auth(sentinel_auth)
            .redis_auth(redis_auth)
            .tls(self.tls())
            .tls_root_cert(read_pem("--tls-ca", self.tls_ca.as_deref())?)
            .tls_client_cert(client_cert);
        let sentinels = self.sentinel_list();
        if !sentinels.is_empty() {
            builder = builder.sentinels(sentinels);
        }
        if let Some(service) = &self.service {
            builder = builder.service_name(service.clone());
        }
        Ok(self.settings.apply(builder, defaults)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        target: Target,
    }

    fn run(args: &[&str]) -> Result<Target, String> {
        let line = Line::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        line.target
            .require_deployment()
            .map_err(|e| e.to_string())?;
        Ok(line.target)
    }

    #[test]
    fn sentinels_service_and_settings() {
        let t = run(&[
            "--sentinel",
            "a:1",
            "--sentinel=b:2",
            "--sentinels",
            "c:3,,d:4",
            "--service",
            "svc",
            "--query-timeout",
            "2",
            "--set",
            "connect-timeout=3",
        ])
        .expect("valid");
        assert_eq!(t.sentinel_list(), ["a:1", "b:2", "c:3", "d:4"]);
        assert_eq!(t.service.as_deref(), Some("svc"));
        assert_eq!(
            t.settings.0,
            [
                ("query_timeout".into(), "2".into()),
                ("connect_timeout".into(), "3".into())
            ]
        );
        let config = t.config().expect("a valid configuration");
        assert_eq!(config.sentinels().len(), 4);
        assert_eq!(config.service_name(), "svc");
        assert_eq!(config.query_timeout().as_secs(), 2);
        let t = run(&[
            "--sentinel",
            "a:1",
            "--service-name",
            "s",
            "--tls-ca",
            "x.pem",
        ])
        .expect("valid");
        assert!(t.tls());
        let t = run(&["--set", "sentinels=a:1", "--set", "service_name=s"]).expect("valid");
        assert_eq!(t.config().expect("valid").service_name(), "s");
    }

    #[test]
    fn clear_errors() {
        for (args, needle) in [
            (&["--service", "s"][..], "--sentinel HOST:PORT is required"),
            (&["--sentinel", "a:1"][..], "--service NAME is required"),
            (
                &["--sentinel"][..],
                "a value is required for '--sentinel <HOST:PORT>'",
            ),
            (
                &["--sentinel", "a:1", "--bogus", "1"][..],
                "unexpected argument '--bogus'",
            ),
            (
                &["--sentinel", "a:1", "--tls=1"][..],
                "unexpected value '1' for '--tls'",
            ),
            (
                &["--sentinel", "a:1", "stray"][..],
                "unexpected argument 'stray'",
            ),
            (
                &["--sentinel", "a:1", "--service", "s", "--tls-key", "k"][..],
                "--tls-cert <FILE>",
            ),
            (
                &[
                    "--sentinel",
                    "a:1",
                    "--service",
                    "s",
                    "--query-timeout",
                    "-1",
                ][..],
                "(setting `query_timeout`)",
            ),
        ] {
            let e = run(args).expect_err("invalid");
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let t = run(&[
            "--sentinel",
            "a:1",
            "--service",
            "s",
            "--query-timeout",
            "0",
        ])
        .expect("parsed");
        let e = t.config().expect_err("zero").to_string();
        assert!(
            e.contains("invalid --query-timeout (setting `query_timeout`)"),
            "{e}"
        );
        let t = run(&["--sentinel", "a:1", "--service", "s", "--redis-user", "u"]).expect("parsed");
        let e = t.config().expect_err("no password").to_string();
        assert!(e.contains("--redis-user needs --redis-password"), "{e}");
        let t = run(&[
            "--sentinel",
            "a:1",
            "--service",
            "s",
            "--tls-ca",
            "/no/such.pem",
        ])
        .expect("parsed");
        let e = t.config().expect_err("no file").to_string();
        assert!(e.contains("--tls-ca: cannot read /no/such.pem"), "{e}");
    }
}
