//! The log section: what is logged, and in which format.

use tracing_subscriber::filter::Targets;

use super::source::Reader;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `AUTH_LOG`, parsed.
    pub filter: Targets,
    pub format: LogFormat,
}

impl LogConfig {
    pub(super) fn read(r: &mut Reader) -> LogConfig {
        let default: Targets = "info".parse().expect("`info` is a valid filter");
        LogConfig {
            filter: r.parse("AUTH_LOG", default, |v| {
                v.parse().map_err(|_| {
                    format!("must be a filter such as info or authd=debug,warn, got {v:?}")
                })
            }),
            format: r.parse("AUTH_LOG_FORMAT", LogFormat::Text, |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("must be text or json, got {v:?}")),
            }),
        }
    }
}
