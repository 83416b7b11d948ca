//! Logs of the scenarios: every error-level event is counted (a failover that works logs no
//! error), and `RUST_LOG` prints the supervisor's logs.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

static ERRORS: AtomicUsize = AtomicUsize::new(0);

struct CountErrors;

impl<S: Subscriber> Layer<S> for CountErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            ERRORS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Installs the process-wide subscriber (once): the error counter, and a `fmt` layer filtered
/// by `RUST_LOG` (nothing by default).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
        let _ = tracing_subscriber::registry()
            .with(CountErrors)
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .try_init();
    });
}

/// Error-level events logged so far in this process.
pub fn errors() -> usize {
    ERRORS.load(Ordering::SeqCst)
}
