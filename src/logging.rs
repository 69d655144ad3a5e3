//! Logs on stderr, filtered by `GITPAT_LOG` (else `RUST_LOG`, else info):
//! a line of text per event, or with `log_format = json` one JSON object
//! per line (the request log's fields as fields of their own).

use std::sync::OnceLock;

use crate::config::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format the logs were started with (text before they are).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Starts the logs once; later calls change nothing.
pub fn init(format: LogFormat) {
    if FORMAT.set(format).is_err() {
        return;
    }
    let filter = std::env::var("GITPAT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init(),
    };
}
