//! The Rust fragments of the READMEs, compiled by `cargo test --doc` as doc tests of this
//! crate (which depends on every crate they use): a fragment that needs a live deployment is
//! marked `no_run` and only compiled; the others also run. `tests/readme_example.rs` checks
//! that no README fragment is left out (`ignore`) and that every README with Rust in it is
//! listed here.

#[doc = include_str!("../../README.md")]
pub struct Readme;

#[doc = include_str!("../../integrations/apalis/README.md")]
pub struct ApalisReadme;

#[doc = include_str!("../../integrations/deadpool/README.md")]
pub struct DeadpoolReadme;
