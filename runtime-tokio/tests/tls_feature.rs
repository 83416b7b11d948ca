//! TLS settings without a TLS feature of this crate: a clear error before any connection.
//! (With `tls-rustls` or `tls-native-tls`, as in `cargo test --workspace`, there is nothing to
//! test here; the real-Redis TLS scenario runs instead.)
#![cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]

use dramatiq_sentinel_tokio::{Config, StartError, Supervisor};

#[tokio::test]
async fn tls_without_a_tls_feature_names_the_field() {
    let config = Config::builder()
        .sentinels(["127.0.0.1:1"])
        .tls(true)
        .build()
        .expect("valid");
    match Supervisor::start(config).await {
        Err(StartError::InvalidConfig { field, problem }) => {
            assert_eq!(field, "tls");
            assert!(problem.contains("feature"), "{problem}");
        }
        other => panic!("expected InvalidConfig for `tls`, got {other:?}"),
    }
}
