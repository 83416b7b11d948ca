//! A supervisor configuration for a deployment of this harness.

use crate::{Auth, Deployment};
use dramatiq_sentinel_supervisor::{ClientCert, ConfigBuilder, Credentials};
use std::time::Duration;

fn credentials(auth: &Auth) -> Option<Credentials> {
    auth.password().map(|password| Credentials {
        username: auth.username().map(str::to_owned),
        password: password.to_owned(),
    })
}

/// A configuration for this deployment: its sentinels, service, credentials and NAT map, with
/// timings suited to tests (quick listener backoff, bounded startup), and its TLS
/// certificates in TLS mode.
pub fn config_for(d: &Deployment) -> ConfigBuilder {
    let mut b = dramatiq_sentinel_supervisor::Config::builder()
        .sentinels(d.sentinel_addrs().iter().map(ToString::to_string))
        .service_name(d.service_name().to_owned())
        .sentinel_auth(credentials(d.sentinel_auth()))
        .redis_auth(credentials(d.data_auth()))
        .min_backoff(Duration::from_millis(200))
        .max_backoff(Duration::from_secs(2))
        .startup_timeout(Some(Duration::from_secs(30)))
        .pause_timeout(Duration::from_secs(60));
    for (announced, reachable) in d.nat_map() {
        b = b.nat(announced, reachable);
    }
    if let Some(tls) = d.tls() {
        b = b
            .tls(true)
            .tls_root_cert(Some(tls.ca.clone()))
            .tls_client_cert(Some(ClientCert {
                cert: tls.cert.clone(),
                key: tls.key.clone(),
            }));
    }
    b
}
