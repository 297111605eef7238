//! Logging: `tracing` to standard error, human-readable or one JSON object per line.
//! Every event logged while a request is handled is within its `request` span, whose
//! `request_id` both formats show.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written: for people, or one JSON object each for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (`info`,
/// `latchkey=debug,actix_web=warn`); it was validated with the settings.
pub fn init(filter: &str, format: LogFormat) {
    let mut filter_text = filter.to_owned();
    // webauthn-rs logs every passkey a client gets wrong at ERROR: anybody could fill the
    // error log at will. The service logs each refusal with its reason at info
    // (`passkey_refused`); the library's own lines show when asked for by name.
    if !filter_text.contains("webauthn") {
        filter_text.push_str(",webauthn_rs_core=off,webauthn_rs=off");
    }
    let filter = EnvFilter::try_new(&filter_text).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests start many apps in one process) is harmless.
    let _ = match format {
        LogFormat::Pretty => builder.finish().with(DemoteUnparsableRequests).try_init(),
        // Each line lists its spans (`spans`, outermost first) with their fields, so that
        // every event of a request carries its `request_id`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .finish()
            .with(DemoteUnparsableRequests)
            .try_init(),
    };
}

/// Where actix-http reports a connection's errors.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// actix-http reports a request it cannot parse (a bad request line, header or length) as an
/// error, though that is the client's doing and anyone can send one. Such an event is written
/// at debug instead, so that a stream of garbage neither fills the error log nor wakes anybody.
struct DemoteUnparsableRequests;

impl<S: Subscriber> Layer<S> for DemoteUnparsableRequests {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != Level::ERROR || metadata.target() != ACTIX_DISPATCHER {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if !message.0.starts_with("stream error: request parse error") {
            return true;
        }
        tracing::debug!(target: ACTIX_DISPATCHER, "{}", message.0);
        false
    }
}

/// The `message` of an event, as text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Checks a filter without installing it, so that a bad `LATCHKEY_LOG` stops start-up.
pub fn check_filter(filter: &str) -> Result<(), String> {
    EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|error| format!("not a valid log filter: {error}"))
}
