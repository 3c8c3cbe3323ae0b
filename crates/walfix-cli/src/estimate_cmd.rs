//! `walfix estimate`: how much memory Prometheus's replay of this WAL needs, and whether it fits.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use walfix::report::show_path;
use walfix_estimate::report::{write_human, JsonOutput};

/// Schema of `estimate --json` (docs/json-output.md); bumped on any incompatible change.
pub const SCHEMA: &str = "walfix-estimate/1";

/// The estimate's object with the schema first, as check and preflight lines carry theirs.
#[derive(serde::Serialize)]
struct WithSchema<'a> {
    schema: &'static str,
    #[serde(flatten)]
    output: JsonOutput<'a>,
}
use walfix_estimate::{
    detect_memory_limit, estimate_path, Family, LabelLayout, MemoryLimit, ModelOptions, ReadOptions,
};

/// Exit codes of `estimate`, for the help text.
pub const EXIT_CODES: &str = "\
Exit codes (made for a Kubernetes initContainer):
  0  fits: the upper end of the range of replay's peak RSS is within the limit (or no limit was given)
  1  tight: the estimate is within the limit but not the upper end of its range, or over the
     limit but GOMEMLIMIT keeps the heap under it
  2  will OOM: replay needs more than the limit
  3  operational error: a file could not be read, bad usage, bad path";

const EXIT_OPERATIONAL: u8 = 3;

/// Label layout on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum LabelsArg {
    /// `[]Label`: 2.42 and older, and 2.x builds without `-tags stringlabels` (Debian's 2.53).
    Slice,
    /// One string per label set: 3.x, and official 2.44+ builds.
    String,
}

/// Estimate the memory Prometheus needs to replay a WAL (series churn, head, Go GC), and
/// whether it fits a memory limit.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct EstimateArgs {
    /// A Prometheus data dir, a wal/ dir, a checkpoint.N dir or one segment file.
    pub path: PathBuf,
    /// Prometheus version whose memory layout to use: 2.42, 2.53 or 3.5; other versions are
    /// mapped to their family (2.0-2.43 -> 2.42, 2.44-2.55 -> 2.53, 3.x -> 3.5).
    #[arg(long, default_value = "3.5")]
    pub prometheus_version: String,
    /// Memory limit to compare with: bytes (suffixes K, M, G or Ki, Mi, Gi) or `auto` (the
    /// cgroup v2 memory.max or v1 memory.limit_in_bytes of this container).
    #[arg(long, value_name = "BYTES|auto")]
    pub memory_limit: Option<String>,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Label layout of the Prometheus build (default: 2.42 and 2.53 slice, as Debian builds
    /// them; official 2.53 images use string).
    #[arg(long, value_enum)]
    pub labels: Option<LabelsArg>,
    /// GOGC of Prometheus (default: the version's: 100 in 2.x replay, 75 from 2.53's config and in 3.x).
    #[arg(long)]
    pub gogc: Option<u32>,
    /// GOMEMLIMIT of Prometheus: bytes, `auto` (90% of the memory limit, as 3.x does by
    /// default and 2.53 with --enable-feature=auto-gomemlimit) or `off`. Default: auto for
    /// 3.x, off for 2.x.
    #[arg(long, value_name = "BYTES|auto|off")]
    pub gomemlimit: Option<String>,
    /// GOMAXPROCS of Prometheus (its replay runs one worker per CPU). Default: what Prometheus
    /// would see here (3.x honours the cgroup CPU quota, 2.x counts the CPUs).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Hours of churn the head holds in steady state (it grows to 1.5 block ranges = 3 h
    /// before compaction).
    #[arg(long, default_value_t = 3.0)]
    pub head_window: f64,
    /// Exemplar storage entries, if Prometheus runs with --enable-feature=exemplar-storage.
    #[arg(long, value_name = "N")]
    pub exemplar_storage: Option<u64>,
    /// Treat the WAL as a Prometheus agent WAL.
    #[arg(long)]
    pub agent: bool,
    /// Let the exit code also say whether the steady state (churn going on) fits.
    #[arg(long)]
    pub include_steady: bool,
}

/// Parses `512Mi`, `2G`, `1073741824`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mul: f64 = match unit.trim().trim_end_matches('B') {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1048576.0,
        "Gi" => 1073741824.0,
        "Ti" => 1099511627776.0,
        _ => return None,
    };
    Some((num * mul) as u64)
}

/// CPUs in this process's affinity mask (what Go's `runtime.NumCPU` counts).
fn affinity_cpus() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => n += b.parse::<u32>().ok()? - a.parse::<u32>().ok()? + 1,
            None => n += 1,
        }
    }
    (n > 0).then_some(n)
}

fn fail(msg: String) -> ExitCode {
    eprintln!("walfix: {}", walfix_format::text::escape_controls(&msg));
    ExitCode::from(EXIT_OPERATIONAL)
}

/// The CPUs Prometheus would see here: 3.x honours the cgroup CPU quota, 2.x counts the CPUs.
pub fn default_cpus(family: Family) -> u32 {
    let quota = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    match family {
        Family::V3_5 => quota,
        _ => affinity_cpus().unwrap_or(quota),
    }
}

/// The model `walfix estimate` uses with no options but the version and the limit.
pub fn default_model(family: Family, limit_bytes: Option<u64>) -> ModelOptions {
    let mut opts = ModelOptions::new(family, default_cpus(family));
    if family.params().auto_memlimit {
        opts.gomemlimit = limit_bytes.map(|b| b / 10 * 9);
    }
    opts
}

/// Runs `walfix estimate`.
pub fn run(args: EstimateArgs) -> ExitCode {
    let Some(family) = Family::parse(&args.prometheus_version) else {
        return fail(format!(
            "--prometheus-version {}: not a Prometheus 2.x or 3.x version",
            args.prometheus_version
        ));
    };
    let limit: Option<MemoryLimit> = match args.memory_limit.as_deref() {
        None => None,
        Some("auto") => match detect_memory_limit() {
            Ok(l) => Some(l),
            Err(e) => return fail(format!("reading the cgroup memory limit: {e}")),
        },
        Some(s) => match parse_bytes(s) {
            Some(b) if b > 0 => Some(MemoryLimit {
                bytes: Some(b),
                source: "--memory-limit".into(),
            }),
            _ => {
                return fail(format!(
                    "--memory-limit {s}: expected bytes (512Mi, 2G, ...) or auto"
                ))
            }
        },
    };
    let limit_bytes = limit.as_ref().and_then(|l| l.bytes);
    let cpus = args.cpus.unwrap_or_else(|| default_cpus(family));
    let mut opts = ModelOptions::new(family, cpus);
    if let Some(l) = args.labels {
        opts.labels = match l {
            LabelsArg::Slice => LabelLayout::Slice,
            LabelsArg::String => LabelLayout::String,
        };
    }
    if let Some(g) = args.gogc {
        opts.gogc_replay = g;
        opts.gogc_steady = g;
    }
    let auto = family.params().auto_memlimit;
    opts.gomemlimit = match args.gomemlimit.as_deref() {
        None if auto => limit_bytes.map(|b| b / 10 * 9),
        None | Some("off") => None,
        Some("auto") => limit_bytes.map(|b| b / 10 * 9),
        Some(s) => match parse_bytes(s) {
            Some(b) if b > 0 => Some(b),
            _ => return fail(format!("--gomemlimit {s}: expected bytes, auto or off")),
        },
    };
    if !(args.head_window >= 0.0 && args.head_window.is_finite()) {
        return fail("--head-window must be a number of hours >= 0".into());
    }
    opts.head_window_hours = args.head_window;
    opts.exemplar_storage = args.exemplar_storage;
    let flavor = if args.agent {
        walfix::WalFlavor::Agent
    } else {
        walfix::WalFlavor::Server
    };
    let bar = crate::progress::Bar::over_path(&args.path, flavor, 1, "reading");
    let read = ReadOptions {
        flavor,
        warmup_ms: None,
        progress: bar.progress(),
    };
    let report = match estimate_path(&args.path, &opts, read) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}", show_path(&args.path))),
    };
    drop(bar);
    let fit = report.verdict(limit_bytes);
    let mut code = fit.exit_code;
    if args.include_steady && fit.steady_state_over_limit == Some(true) {
        code = code.max(2);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let res = if args.json {
        let obj = WithSchema {
            schema: SCHEMA,
            output: JsonOutput::new(&args.path, &report, limit.as_ref(), &fit),
        };
        serde_json::to_writer(&mut out, &obj)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        write_human(&mut out, &args.path, &report, limit.as_ref(), &fit)
    }
    .and_then(|_| out.flush());
    match res {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return fail(format!("writing output: {e}")),
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_bytes("2G"), Some(2_000_000_000));
        assert_eq!(parse_bytes("1073741824"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5Gi"), Some(1610612736));
        assert_eq!(parse_bytes("12 MiB"), Some(12 << 20));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("5Q"), None);
    }
}
