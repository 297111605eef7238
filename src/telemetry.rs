//! Logging: `tracing` to standard error, human-readable or one JSON object per line.
//! Every event logged while a request is handled is within its `request` span, whose
//! `request_id` both formats show.

use tracing_subscriber::EnvFilter;

/// How log lines are written: for people, or one JSON object each for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (`info`,
/// `latchkey=debug,actix_web=warn`); it was validated with the settings.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests start many apps in one process) is harmless.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        // Each line lists its spans (`spans`, outermost first) with their fields, so that
        // every event of a request carries its `request_id`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// Checks a filter without installing it, so that a bad `LATCHKEY_LOG` stops start-up.
pub fn check_filter(filter: &str) -> Result<(), String> {
    EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|error| format!("not a valid log filter: {error}"))
}
