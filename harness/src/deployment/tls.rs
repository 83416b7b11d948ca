//! TLS mode: a throwaway CA and one certificate (for 127.0.0.1, 127.0.0.2 and `localhost`, good
//! for servers and clients), made with the `openssl` command line tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{HarnessError, Result};

/// The TLS material of a deployment in TLS mode: every process serves and presents
/// `cert`/`key`, trusts `ca`, and requires clients to present a certificate of that CA
/// (`tls-auth-clients yes`). Clients use the same certificate.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate file (PEM).
    pub ca_file: PathBuf,
    /// The certificate file (PEM).
    pub cert_file: PathBuf,
    /// Its private key file (PEM).
    pub key_file: PathBuf,
    /// The CA certificate (PEM).
    pub ca: Vec<u8>,
    /// The certificate (PEM).
    pub cert: Vec<u8>,
    /// Its private key (PEM).
    pub key: Vec<u8>,
}

impl TlsFiles {
    /// Makes a CA and a certificate it signs in `dir`.
    pub(crate) fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let path = |name: &str| dir.join(name);
        let (ca_file, cert_file, key_file) = (path("ca.crt"), path("redis.crt"), path("redis.key"));
        let (ca_key, csr, ext) = (path("ca.key"), path("redis.csr"), path("ext.cnf"));
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .map_err(|e| HarnessError::io(format!("writing {}", ext.display()), e))?;
        let subject = "/CN=dramatiq-sentinel test CA";
        openssl(
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ],
            &[("-keyout", &ca_key), ("-out", &ca_file)],
            &["-subj", subject],
        )?;
        openssl(
            &["req", "-newkey", "rsa:2048", "-nodes"],
            &[("-keyout", &key_file), ("-out", &csr)],
            &["-subj", "/CN=127.0.0.1"],
        )?;
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", &csr),
                ("-CA", &ca_file),
                ("-CAkey", &ca_key),
                ("-out", &cert_file),
                ("-extfile", &ext),
            ],
            &[],
        )?;
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| HarnessError::io(format!("reading {}", p.display()), e))
        };
        Ok(Self {
            ca: read(&ca_file)?,
            cert: read(&cert_file)?,
            key: read(&key_file)?,
            ca_file,
            cert_file,
            key_file,
        })
    }
}

/// Runs `openssl` with `args`, then each flag with its path, then `tail`.
fn openssl(args: &[&str], paths: &[(&str, &Path)], tail: &[&str]) -> Result<()> {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.args(tail);
    let output = command.output().map_err(|e| {
        HarnessError::io(
            "running `openssl` for TLS mode (on Debian/Ubuntu: `apt-get install openssl`)",
            e,
        )
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HarnessError::io(
            format!("TLS mode: `openssl {}`", args.join(" ")),
            std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        ))
    }
}
