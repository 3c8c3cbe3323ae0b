//! JSON Lines output of `walfix check` (schema: docs/json-output.md).

use std::io::{self, Write};

use serde::Serialize;
use walfix::Report;

/// Version of the JSON Lines schema; bumped on any incompatible change.
pub const SCHEMA: &str = "walfix-check/1";

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Begin {
        schema: &'static str,
        walfix_version: &'static str,
        #[serde(serialize_with = "walfix::report::lossless_path")]
        path: &'a std::path::Path,
    },
    Log(&'a walfix::report::LogSummary),
    Finding(&'a walfix::Finding),
    /// The only line of a check that could not run (bad path, not a WAL, unreadable dir).
    Error {
        schema: &'static str,
        walfix_version: &'static str,
        #[serde(serialize_with = "walfix::report::lossless_path")]
        path: &'a std::path::Path,
        message: &'a str,
        exit_code: i32,
    },
    Summary {
        totals: &'a walfix::Stats,
        distinct_series: u64,
        prometheus_outcome: &'a str,
        prometheus: &'a walfix::PrometheusOutcome,
        worst: walfix::Severity,
        exit_code: i32,
    },
}

fn line(out: &mut impl Write, l: &Line<'_>) -> io::Result<()> {
    // `io::Error::from` hands back the writer's own error (a broken pipe stays a broken pipe,
    // which the caller treats as a reader that has seen enough); `io::Error::other` hid it.
    serde_json::to_writer(&mut *out, l).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Writes the report as JSON Lines: `begin`, one `log` per log, one `finding` per finding,
/// then `summary`.
pub fn write(out: &mut impl Write, r: &Report) -> io::Result<()> {
    line(
        out,
        &Line::Begin {
            schema: SCHEMA,
            walfix_version: env!("CARGO_PKG_VERSION"),
            path: &r.root,
        },
    )?;
    for l in &r.logs {
        line(out, &Line::Log(l))?;
    }
    for f in &r.findings {
        line(out, &Line::Finding(f))?;
    }
    line(
        out,
        &Line::Summary {
            totals: &r.totals,
            distinct_series: r.distinct_series,
            prometheus_outcome: &r.prometheus_outcome,
            prometheus: &r.prometheus,
            worst: r.worst,
            exit_code: r.exit_code,
        },
    )
}

/// Writes the one `error` line of a check that could not run at all.
pub fn write_error(
    out: &mut impl Write,
    path: &std::path::Path,
    message: &str,
    exit_code: i32,
) -> io::Result<()> {
    line(
        out,
        &Line::Error {
            schema: SCHEMA,
            walfix_version: env!("CARGO_PKG_VERSION"),
            path,
            message,
            exit_code,
        },
    )
}
