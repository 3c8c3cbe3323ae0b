//! `walfix preflight`: everything that made real Prometheus pods crash-loop, checked before
//! Prometheus starts, in one command with one exit code (docs/preflight.md).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;
use serde_json::{json, Value};
use walfix::perms::{self, Access};
use walfix::repair::{self, Mode, RepairOptions};
use walfix::report::show_path;
use walfix::{space, Severity};
use walfix_estimate::{detect_memory_limit, estimate_path, Family, ReadOptions, Verdict};
use walfix_format::text::escape_controls;

use crate::estimate_cmd::{default_model, parse_bytes};

pub const EXIT_CODES: &str = "\
Exit codes (docs/preflight.md):
  0  ready: Prometheus can start (after a repair walfix made, or with warnings)
  2  refused by policy or needs a human: damage walfix does not repair on its own, a repair
     losing more than --max-loss, --on-damage fail with damage, a running Prometheus
  3  operational error: bad usage, I/O error
  4  environment not ready: permissions, free space, read-only volume, memory
     (--on-oom-risk fail, or a flush that could not clear the risk)
With -- COMMAND..., a ready preflight execs COMMAND (its exit code is then Prometheus's).";

/// Termination messages are cut to this (the kubelet reads at most 4096 bytes).
const TERMINATION_MAX: usize = 4096;

#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct PreflightArgs {
    /// The Prometheus data dir (--storage.tsdb.path), e.g. /prometheus.
    path: PathBuf,
    /// JSON Lines on stdout (schema walfix-preflight/1, docs/preflight.md).
    #[arg(long)]
    json: bool,
    /// What to do with damage `walfix repair` can fix: fail, repair (salvage), or warn and
    /// start anyway. Damage that needs a human is never repaired here.
    #[arg(long, value_enum, default_value_t = OnDamage::Repair)]
    on_damage: OnDamage,
    /// Refuse a repair that loses more than this fraction of the WAL's samples.
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    max_loss: f64,
    /// User id Prometheus runs as.
    #[arg(long, default_value_t = 65534)]
    uid: u32,
    /// Group id Prometheus runs as.
    #[arg(long, default_value_t = 65534)]
    gid: u32,
    /// Supplementary groups of Prometheus (a pod's fsGroup), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "GID,...")]
    groups: Vec<u32>,
    /// As root: give the data dir tree to --uid/--gid and add missing owner bits.
    #[arg(long)]
    fix_ownership: bool,
    /// The Prometheus container's memory limit: bytes (512Mi, 2G), `auto` (this container's
    /// cgroup), or `env:NAME` (a downward-API variable fed from limits.memory).
    #[arg(long, value_name = "BYTES|auto|env:NAME")]
    memory_limit: Option<String>,
    /// What a will-OOM verdict does: warn and start, fail (exit 4), or flush the WAL into
    /// blocks (`walfix flush`: its memory is bounded, not the replay's) and move it to the
    /// backup, so Prometheus starts from the blocks with an empty head.
    #[arg(long, value_enum, default_value_t = OnOomRisk::Warn)]
    on_oom_risk: OnOomRisk,
    /// Prometheus version for the memory model (2.42, 2.53, 3.5).
    #[arg(long, default_value = "3.5")]
    prometheus_version: String,
    /// Where to write the one-line outcome for `kubectl describe pod` (default:
    /// /dev/termination-log when it exists and is writable).
    #[arg(long, value_name = "PATH")]
    termination_log: Option<PathBuf>,
    /// Repair backups to keep (older ones are removed); 0 keeps every one.
    #[arg(long, default_value_t = 3, value_name = "N")]
    keep_backups: usize,
    /// Where repair puts removed bytes (default: DATA_DIR/walfix-backup).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// If the newest segment was written less than SECONDS ago, watch it until it is that old:
    /// a segment that changes means a Prometheus without a lock file is writing.
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    live_wait: f64,
    /// The WAL is a Prometheus agent WAL.
    #[arg(long)]
    agent: bool,
    /// Prometheus and its arguments, exec'd when ready (after `--`).
    #[arg(last = true, value_name = "PROMETHEUS_COMMAND")]
    command: Vec<OsString>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnDamage {
    Fail,
    Repair,
    Warn,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOomRisk {
    Fail,
    Warn,
    Flush,
}

/// A check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Skipped,
    Ok,
    Fixed,
    Warn,
    Fail,
}

/// The run's outcome, which is the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    Ready,
    Refused,
    NotReady,
    Error,
}

impl Outcome {
    fn exit_code(self) -> u8 {
        match self {
            Outcome::Ready => 0,
            Outcome::Refused => 2,
            Outcome::Error => 3,
            Outcome::NotReady => 4,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Outcome::Ready => "ready",
            Outcome::Refused => "refused",
            Outcome::NotReady => "not ready",
            Outcome::Error => "error",
        }
    }
}

/// What stops the run: the outcome and why.
struct Stop(Outcome, String);

/// Lines as they are decided: human text or JSON Lines.
struct Out {
    json: bool,
    w: io::BufWriter<io::Stdout>,
    broken: bool,
}

impl Out {
    fn emit(&mut self, v: &Value, human: &str) {
        if self.broken {
            return;
        }
        let r = if self.json {
            serde_json::to_writer(&mut self.w, v)
                .map_err(io::Error::other)
                .and_then(|_| writeln!(self.w))
        } else {
            writeln!(self.w, "{human}")
        }
        .and_then(|_| self.w.flush());
        // A closed pipe is not a reason to stop the checks or the exec.
        if r.is_err() {
            self.broken = true;
        }
    }

    fn check(&mut self, name: &str, status: Status, message: &str, data: Value) {
        let mut v = json!({
            "schema": "walfix-preflight/1",
            "type": "check",
            "check": name,
            "status": status,
            "message": message,
        });
        if let (Value::Object(m), Value::Object(d)) = (&mut v, data) {
            m.extend(d);
        }
        let tag = match status {
            Status::Skipped => "skip",
            Status::Ok => "ok",
            Status::Fixed => "FIXED",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        self.emit(
            &v,
            &format!("  {tag:<6} {name:<12} {}", escape_controls(message)),
        );
    }
}

struct Ctx<'a> {
    args: &'a PreflightArgs,
    access: Access,
    out: Out,
    warnings: Vec<String>,
    changes: Vec<String>,
    /// The data dir's lock, held from the live check to the end (released at exec: the file
    /// is close-on-exec), so nothing starts on the data dir between check and repair.
    lock: Option<repair::DirLock>,
}

pub fn run(args: PreflightArgs) -> ExitCode {
    let access = Access {
        uid: args.uid,
        gid: args.gid,
        groups: args.groups.clone(),
    };
    let mut cx = Ctx {
        args: &args,
        access,
        out: Out {
            json: args.json,
            w: io::BufWriter::new(io::stdout()),
            broken: false,
        },
        warnings: Vec::new(),
        changes: Vec::new(),
        lock: None,
    };
    if !cx.args.json {
        let line = format!(
            "walfix preflight {} (Prometheus as uid {} gid {})",
            show_path(&args.path),
            args.uid,
            args.gid
        );
        cx.out.emit(&Value::Null, &line);
    }
    let (outcome, why) = match checks(&mut cx) {
        Ok(()) => {
            let mut s = String::from("Prometheus can start");
            if !cx.changes.is_empty() {
                s += &format!("; walfix {}", cx.changes.join("; "));
            }
            if !cx.warnings.is_empty() {
                s += &format!("; warnings: {}", cx.warnings.join("; "));
            }
            (Outcome::Ready, s)
        }
        Err(Stop(o, why)) => (o, why),
    };
    let summary = format!("walfix preflight: {}: {why}", outcome.name());
    let code = outcome.exit_code();
    let v = json!({
        "schema": "walfix-preflight/1",
        "type": "outcome",
        "status": outcome,
        "exit_code": code,
        "summary": summary,
        "changes": cx.changes,
        "warnings": cx.warnings,
    });
    let human = format!("{} (exit {code})", escape_controls(&summary));
    cx.out.emit(&v, &human);
    let exec = outcome == Outcome::Ready && !args.command.is_empty();
    // When Prometheus is exec'd, a message left now would be shown for its later death.
    if !exec {
        write_termination_log(args.termination_log.as_deref(), &escape_controls(&summary));
    }
    if exec {
        return exec_command(&args.command, &mut cx.out);
    }
    ExitCode::from(code)
}

fn write_termination_log(explicit: Option<&Path>, summary: &str) {
    let default = Path::new("/dev/termination-log");
    let path = match explicit {
        Some(p) => p,
        None if default.exists() => default,
        None => return,
    };
    let mut text = summary.to_string();
    if text.len() > TERMINATION_MAX - 1 {
        let mut cut = TERMINATION_MAX - 4;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text.push('\n');
    if let Err(e) = fs::write(path, text) {
        if explicit.is_some() {
            eprintln!("walfix preflight: writing {}: {e}", show_path(path));
        }
    }
}

fn exec_command(cmd: &[OsString], out: &mut Out) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let _ = out.w.flush();
    let err = std::process::Command::new(&cmd[0]).args(&cmd[1..]).exec();
    let msg = format!(
        "walfix preflight: error: cannot exec {}: {err}",
        cmd[0].to_string_lossy()
    );
    eprintln!("{}", escape_controls(&msg));
    ExitCode::from(Outcome::Error.exit_code())
}

fn checks(cx: &mut Ctx) -> Result<(), Stop> {
    let path = cx.args.path.clone();
    let fresh = data_dir(cx, &path)?;
    if !fresh {
        live(cx, &path)?;
    } else {
        cx.out.check(
            "live",
            Status::Skipped,
            "no WAL: nothing that a running Prometheus could be writing",
            json!({}),
        );
    }
    permissions(cx, &path)?;
    let report = if fresh {
        None
    } else {
        Some(
            walfix::check(&path, &check_opts(cx.args))
                .map_err(|e| Stop(Outcome::Error, format!("{}: {e}", show_path(&path))))?,
        )
    };
    free_space(cx, &path, report.as_ref())?;
    match report {
        Some(r) => wal(cx, &path, r)?,
        None => cx.out.check(
            "wal",
            Status::Skipped,
            "no WAL yet: Prometheus starts with an empty head",
            json!({}),
        ),
    }
    memory(cx, &path, fresh)
}

fn check_opts(args: &PreflightArgs) -> walfix::CheckOptions {
    walfix::CheckOptions {
        flavor: flavor(args),
        ..Default::default()
    }
}

fn flavor(args: &PreflightArgs) -> walfix::WalFlavor {
    if args.agent {
        walfix::WalFlavor::Agent
    } else {
        walfix::WalFlavor::Server
    }
}

/// Returns true for a fresh data dir (nothing to replay).
fn data_dir(cx: &mut Ctx, path: &Path) -> Result<bool, Stop> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            cx.out.check(
                "data-dir",
                Status::Ok,
                &format!(
                    "{} does not exist yet: Prometheus creates it",
                    show_path(path)
                ),
                json!({"fresh": true}),
            );
            return Ok(true);
        }
        Err(e) => return Err(Stop(Outcome::Error, format!("{}: {e}", show_path(path)))),
    };
    if !meta.is_dir() {
        return Err(Stop(
            Outcome::Error,
            format!("{} is not a directory", show_path(path)),
        ));
    }
    let entries: Vec<String> = fs::read_dir(path)
        .map_err(|e| Stop(Outcome::Error, format!("{}: {e}", show_path(path))))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect();
    let log_dir = ["wal", "wbl"].iter().any(|d| path.join(d).is_dir())
        || walfix::live::newest_segment(path).ok().flatten().is_some();
    let (fresh, msg) = if entries.is_empty() {
        (true, "empty: a fresh volume".to_string())
    } else if !log_dir {
        (true, "no wal/ yet: nothing to replay".to_string())
    } else {
        (
            false,
            format!(
                "{} with a WAL",
                plural(entries.len() as u64, "entry", "entries")
            ),
        )
    };
    cx.out.check(
        "data-dir",
        Status::Ok,
        &format!("{}: {msg}", show_path(path)),
        json!({"fresh": fresh}),
    );
    Ok(fresh)
}

fn live(cx: &mut Ctx, path: &Path) -> Result<(), Stop> {
    let refuse = |cx: &mut Ctx, msg: String| {
        cx.out
            .check("live", Status::Fail, &msg, json!({"live": true}));
        Err(Stop(
            Outcome::Refused,
            format!("{msg}; nothing was changed"),
        ))
    };
    match repair::lock(path) {
        Ok(held) => cx.lock = Some(held),
        Err(repair::RepairError::Locked(_)) => {
            return refuse(
                cx,
                format!(
                    "{}/lock is held: a Prometheus is running on this data dir",
                    show_path(path)
                ),
            )
        }
        Err(repair::RepairError::Live(l)) => return refuse(cx, l.to_string()),
        Err(e) => {
            return Err(Stop(
                Outcome::Error,
                format!("{}/lock: {e}", show_path(path)),
            ))
        }
    }
    let wait = Duration::from_secs_f64(cx.args.live_wait.clamp(0.0, 3600.0));
    match walfix::live::growing_segment(path, wait) {
        Ok(Some(l)) => return refuse(cx, l.to_string()),
        Ok(None) => {}
        Err(e) => return Err(Stop(Outcome::Error, format!("{}: {e}", show_path(path)))),
    }
    cx.out.check(
        "live",
        Status::Ok,
        "no lock held, no process with the data dir open, newest segment quiet",
        json!({"live": false}),
    );
    Ok(())
}

fn describe_problem(p: &perms::Problem) -> String {
    format!(
        "cannot {} {} (owner {}:{}, mode {:04o})",
        p.need.describe(),
        show_path(&p.path),
        p.uid,
        p.gid,
        p.mode
    )
}

fn permissions(cx: &mut Ctx, path: &Path) -> Result<(), Stop> {
    let who = format!("uid {} gid {}", cx.access.uid, cx.access.gid);
    let check = |a: &Access| {
        perms::check_tree(path, a)
            .map_err(|e| Stop(Outcome::Error, format!("{}: {e}", show_path(path))))
    };
    let mut r = check(&cx.access)?;
    if r.read_only {
        let msg = format!(
            "{} is on a read-only file system: Prometheus cannot write its WAL",
            show_path(path)
        );
        cx.out.check(
            "permissions",
            Status::Fail,
            &msg,
            json!({"read_only": true}),
        );
        return Err(Stop(Outcome::NotReady, msg));
    }
    let mut fixed = None;
    if r.problem_count > 0 && cx.args.fix_ownership {
        if !rustix::process::geteuid().is_root() {
            let msg = format!(
                "{} entries Prometheus ({who}) cannot use, and --fix-ownership needs root (run this container as uid 0 with CAP_CHOWN)",
                r.problem_count
            );
            cx.out.check(
                "permissions",
                Status::Fail,
                &msg,
                json!({"problems": r.problems}),
            );
            return Err(Stop(Outcome::NotReady, msg));
        }
        let f = perms::fix_ownership(path, cx.access.uid, cx.access.gid)
            .map_err(|e| Stop(Outcome::Error, format!("--fix-ownership: {e}")))?;
        cx.changes.push(format!(
            "gave {} to {}:{} ({} chowned, {} given owner bits)",
            plural(f.chowned.max(f.chmodded), "entry", "entries"),
            cx.access.uid,
            cx.access.gid,
            f.chowned,
            f.chmodded
        ));
        fixed = Some(f);
        r = check(&cx.access)?;
    }
    if r.problem_count > 0 {
        let first = r.problems.first().map(describe_problem).unwrap_or_default();
        let more = if r.problem_count > 1 {
            format!(" and {} more", r.problem_count - 1)
        } else {
            String::new()
        };
        let msg = format!(
            "Prometheus runs as {who} and {first}{more}: it would fail like `open {}: permission denied`; run walfix as root with --fix-ownership, or set the pod's fsGroup",
            // The file it would open first where it is not allowed to.
            r.problems
                .first()
                .map(|p| match p.need {
                    perms::Need::Directory if p.path == path => {
                        show_path(&path.join("queries.active"))
                    }
                    perms::Need::Directory => format!("{}/...", show_path(&p.path)),
                    _ => show_path(&p.path),
                })
                .unwrap_or_default()
        );
        cx.out.check(
            "permissions",
            Status::Fail,
            &msg,
            json!({"problem_count": r.problem_count, "problems": r.problems, "fixed": fixed}),
        );
        return Err(Stop(Outcome::NotReady, msg));
    }
    let (status, msg) = match &fixed {
        Some(f) => (
            Status::Fixed,
            format!(
                "gave {} to {who} ({} chowned, {} given owner bits; e.g. {})",
                plural(r.entries, "entry", "entries"),
                f.chowned,
                f.chmodded,
                f.examples.first().map(|p| show_path(p)).unwrap_or_default()
            ),
        ),
        None => (
            Status::Ok,
            format!(
                "{who} can write what Prometheus writes ({} entries)",
                r.entries
            ),
        ),
    };
    cx.out.check(
        "permissions",
        status,
        &msg,
        json!({"entries": r.entries, "fixed": fixed}),
    );
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn free_space(cx: &mut Ctx, path: &Path, report: Option<&walfix::Report>) -> Result<(), Stop> {
    let (min, max) = report.map_or((None, None), |r| (r.totals.min_time, r.totals.max_time));
    let checkpoint_bytes = report.map_or(0, |r| {
        // By place: an agent's checkpoint is reported as an `agent` log.
        r.logs
            .iter()
            .filter(|l| {
                l.path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint."))
            })
            .map(|l| dir_size(&l.path))
            .sum()
    });
    let need = space::startup_need(min, max, checkpoint_bytes);
    let free =
        space::free(path).map_err(|e| Stop(Outcome::Error, format!("{}: {e}", show_path(path))))?;
    let parts: Vec<String> = need
        .items
        .iter()
        .map(|i| format!("{} {}", i.what, human_bytes(i.bytes)))
        .collect();
    let data = json!({"free_bytes": free.bytes, "needed_bytes": need.bytes, "free_inodes": free.inodes, "needed_inodes": need.inodes, "items": need.items});
    let short_inodes = free.inodes.is_some_and(|n| n < need.inodes);
    if free.bytes < need.bytes || short_inodes {
        let msg = format!(
            "{} free ({} bytes{}) on {}, Prometheus needs {} ({} bytes) to start: {}; it would fail like `zero-pad torn page: no space left on device` or die of SIGBUS writing queries.active. Free space or grow the volume; nothing was changed",
            human_bytes(free.bytes),
            free.bytes,
            free.inodes.map(|n| format!(", {n} inodes")).unwrap_or_default(),
            show_path(path),
            human_bytes(need.bytes),
            need.bytes,
            parts.join(", ")
        );
        cx.out.check("space", Status::Fail, &msg, data);
        return Err(Stop(Outcome::NotReady, msg));
    }
    cx.out.check(
        "space",
        Status::Ok,
        &format!(
            "{} free, Prometheus needs {} to start ({})",
            human_bytes(free.bytes),
            human_bytes(need.bytes),
            parts.join(", ")
        ),
        data,
    );
    Ok(())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human_bytes(b: u64) -> String {
    crate::human::size(b)
}

fn findings_text(r: &walfix::Report, at_least: Severity) -> String {
    let v: Vec<String> = r
        .findings_at_least(at_least)
        .take(3)
        .map(|f| {
            format!(
                "[{}] {}{}: {}",
                f.kind,
                show_path(&f.file),
                f.offset.map(|o| format!(" at {o}")).unwrap_or_default(),
                f.message
            )
        })
        .collect();
    let n = r.findings_at_least(at_least).count();
    let more = if n > 3 {
        format!(" (+{} more)", n - 3)
    } else {
        String::new()
    };
    format!("{}{more}", v.join("; "))
}

fn wal(cx: &mut Ctx, path: &Path, report: walfix::Report) -> Result<(), Stop> {
    let samples = |r: &walfix::Report| {
        r.totals.float_samples + r.totals.histogram_samples + r.totals.float_histogram_samples
    };
    let base = json!({"worst": report.worst, "prometheus_outcome": report.prometheus_outcome, "segments": report.totals.segments, "samples": samples(&report)});
    match report.worst {
        Severity::Info | Severity::Warning => {
            let n = report.findings_at_least(Severity::Warning).count();
            let msg = format!(
                "{} segments, {} samples: Prometheus replays everything{}",
                report.totals.segments,
                samples(&report),
                if n > 0 {
                    format!(
                        " ({n} warnings: {})",
                        findings_text(&report, Severity::Warning)
                    )
                } else {
                    String::new()
                }
            );
            cx.out.check("wal", Status::Ok, &msg, base);
            Ok(())
        }
        Severity::Unreadable => {
            let msg = format!(
                "cannot read the whole WAL: {}",
                findings_text(&report, Severity::Unreadable)
            );
            cx.out.check("wal", Status::Fail, &msg, base);
            Err(Stop(Outcome::Error, msg))
        }
        Severity::NeedsHuman => {
            let msg = format!(
                "damage that needs a human: {}. {}. Run `walfix check {}` and `walfix repair --dry-run {}`",
                findings_text(&report, Severity::NeedsHuman),
                report.prometheus_outcome,
                show_path(path),
                show_path(path)
            );
            if cx.args.on_damage == OnDamage::Warn {
                cx.warnings.push(msg.clone());
                cx.out.check("wal", Status::Warn, &msg, base);
                return Ok(());
            }
            cx.out.check("wal", Status::Fail, &msg, base);
            Err(Stop(Outcome::Refused, msg))
        }
        Severity::Repairable => {
            let found = findings_text(&report, Severity::Repairable);
            match cx.args.on_damage {
                OnDamage::Warn => {
                    let msg = format!("damage, left for Prometheus (--on-damage warn): {found}");
                    cx.warnings.push(msg.clone());
                    cx.out.check("wal", Status::Warn, &msg, base);
                    Ok(())
                }
                OnDamage::Fail => {
                    let msg = format!(
                        "damage that `walfix repair` can fix, refused by --on-damage fail: {found}"
                    );
                    cx.out.check("wal", Status::Fail, &msg, base);
                    Err(Stop(Outcome::Refused, msg))
                }
                OnDamage::Repair => salvage(cx, path, &report, &found, base, samples(&report)),
            }
        }
    }
}

fn salvage(
    cx: &mut Ctx,
    path: &Path,
    report: &walfix::Report,
    found: &str,
    base: Value,
    total_samples: u64,
) -> Result<(), Stop> {
    let opts = RepairOptions {
        mode: Mode::Salvage,
        flavor: flavor(cx.args),
        backup_dir: cx.args.backup_dir.clone(),
        keep_backups: (cx.args.keep_backups > 0).then_some(cx.args.keep_backups),
        // This run holds the lock since its live check (a second flock would conflict).
        force: cx.lock.is_some(),
        ..Default::default()
    };
    let fail = |cx: &mut Ctx, outcome: Outcome, msg: String, base: Value| {
        cx.out.check("wal", Status::Fail, &msg, base);
        Err(Stop(outcome, msg))
    };
    let plan = match repair::plan(path, &opts) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                cx,
                Outcome::Error,
                format!("planning the repair: {e}"),
                base,
            )
        }
    };
    if !plan.unresolved.is_empty() {
        let msg = format!(
            "damage: {found}; the repair would leave this unresolved, so nothing was changed: {}",
            plan.unresolved.join("; ")
        );
        return fail(cx, Outcome::Refused, msg, base);
    }
    let lost = plan.loss.samples + plan.loss.histograms;
    // Damaged regions hold samples nobody can count: their share of the WAL's bytes stands in.
    let by_samples = lost as f64 / total_samples.max(1) as f64;
    let by_bytes = plan.loss.bytes as f64 / report.totals.bytes.max(1) as f64;
    let fraction = by_samples.max(by_bytes);
    if fraction > cx.args.max_loss {
        let msg = format!(
            "damage: {found}; repairing it loses {lost} of {total_samples} samples and {} of {} bytes ({:.2}%), more than --max-loss {}%: nothing was changed; see `walfix repair --dry-run {}`",
            plan.loss.bytes,
            report.totals.bytes,
            fraction * 100.0,
            cx.args.max_loss * 100.0,
            show_path(path)
        );
        return fail(cx, Outcome::Refused, msg, base);
    }
    let outcome = match repair::execute(&plan, &opts, &walfix::fsops::RealFs) {
        Ok(o) => o,
        Err(e @ repair::RepairError::NoSpace { .. }) => {
            return fail(cx, Outcome::NotReady, format!("damage: {found}; {e}"), base)
        }
        Err(
            e @ (repair::RepairError::Locked(_)
            | repair::RepairError::Live(_)
            | repair::RepairError::Changed(_)),
        ) => return fail(cx, Outcome::Refused, format!("damage: {found}; {e}"), base),
        Err(e) => return fail(cx, Outcome::Error, format!("repair failed: {e}"), base),
    };
    if outcome.after.worst >= Severity::Repairable {
        let msg = format!(
            "repaired, but damage remains: {}",
            findings_text(&outcome.after, Severity::Repairable)
        );
        return fail(cx, Outcome::Refused, msg, base);
    }
    let change = format!(
        "repaired the WAL ({} change(s), {lost} samples and {} damaged region(s) removed; originals in {})",
        outcome.done,
        plan.loss.damaged_regions,
        show_path(&plan.backup_run)
    );
    cx.changes.push(change.clone());
    let mut data = base;
    if let Value::Object(m) = &mut data {
        m.insert("repair".into(), json!({"actions": plan.actions, "loss": plan.loss, "backup": walfix::report::Text(walfix::report::path_bytes(&plan.backup_run).into_owned()), "pruned": outcome.pruned.iter().map(|p| show_path(p)).collect::<Vec<_>>()}));
    }
    cx.out.check(
        "wal",
        Status::Fixed,
        &format!("damage: {found}; {change}"),
        data,
    );
    Ok(())
}

fn memory(cx: &mut Ctx, path: &Path, fresh: bool) -> Result<(), Stop> {
    let Some(spec) = cx.args.memory_limit.clone() else {
        cx.out.check(
            "memory",
            Status::Skipped,
            "no --memory-limit given",
            json!({}),
        );
        return Ok(());
    };
    let limit = parse_limit(&spec).map_err(|m| Stop(Outcome::Error, m))?;
    if fresh {
        cx.out.check(
            "memory",
            Status::Ok,
            "no WAL to replay",
            json!({"limit_bytes": limit}),
        );
        return Ok(());
    }
    let Some(family) = Family::parse(&cx.args.prometheus_version) else {
        return Err(Stop(
            Outcome::Error,
            format!(
                "--prometheus-version {}: not a Prometheus 2.x or 3.x version",
                cx.args.prometheus_version
            ),
        ));
    };
    let opts = default_model(family, limit);
    let read = ReadOptions {
        flavor: flavor(cx.args),
        warmup_ms: None,
        ..Default::default()
    };
    let est = estimate_path(path, &opts, read)
        .map_err(|e| Stop(Outcome::Error, format!("estimating memory: {e}")))?;
    let fit = est.verdict(limit);
    let data = json!({"verdict": fit.verdict, "limit_bytes": fit.limit_bytes, "need_bytes": fit.need_bytes, "margin_bytes": fit.margin_bytes});
    match fit.verdict {
        Verdict::Fits | Verdict::NoLimit => {
            cx.out.check("memory", Status::Ok, &fit.reason, data);
            Ok(())
        }
        Verdict::Tight => {
            cx.warnings.push(format!("memory tight: {}", fit.reason));
            cx.out.check("memory", Status::Warn, &fit.reason, data);
            Ok(())
        }
        Verdict::WillOom => {
            let msg = format!("will OOM: {}", fit.reason);
            if cx.args.on_oom_risk == OnOomRisk::Warn {
                cx.warnings.push(msg.clone());
                cx.out.check("memory", Status::Warn, &msg, data);
                return Ok(());
            }
            if cx.args.on_oom_risk == OnOomRisk::Flush {
                return flush_wal(cx, path, &msg, data);
            }
            cx.out.check("memory", Status::Fail, &msg, data);
            Err(Stop(
                Outcome::NotReady,
                format!(
                    "{msg}; raise the container's memory limit (refused by --on-oom-risk fail)"
                ),
            ))
        }
    }
}

/// `--on-oom-risk flush`: the WAL into blocks, then out of replay's way (docs/flush.md).
fn flush_wal(cx: &mut Ctx, path: &Path, msg: &str, mut data: Value) -> Result<(), Stop> {
    use walfix_flush::{flush, FlushError, FlushOptions};
    let opts = FlushOptions {
        flavor: flavor(cx.args),
        backup_dir: cx.args.backup_dir.clone(),
        // Held since the live check: nothing started on the data dir in between.
        caller_holds_lock: cx.lock.is_some(),
        ..FlushOptions::default()
    };
    let fail = |cx: &mut Ctx, outcome: Outcome, why: String, data: Value| {
        let m = format!("{msg}; flush: {why}");
        cx.out.check("memory", Status::Fail, &m, data);
        Err(Stop(outcome, m))
    };
    match flush(path, &opts) {
        Ok(r) => {
            if let Value::Object(m) = &mut data {
                m.insert("flush".into(), json!(r));
            }
            let Some(h) = &r.handover else {
                let why = r.wal_kept.clone().unwrap_or_default();
                return fail(
                    cx,
                    Outcome::NotReady,
                    format!("blocks written but the WAL stays ({why}): replay would still need the memory"),
                    data,
                );
            };
            let change = format!(
                "flushed {} samples of {} series into {} blocks and moved {} to {}",
                r.samples_written,
                r.series,
                r.blocks.len(),
                h.moved
                    .iter()
                    .filter_map(|m| m.path.file_name())
                    .map(|n| escape_controls(&n.to_string_lossy()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                show_path(&h.backup_run)
            );
            cx.changes.push(change.clone());
            cx.out.check(
                "memory",
                Status::Fixed,
                &format!("{msg}; {change}: replay starts empty"),
                data,
            );
            Ok(())
        }
        Err(e) => {
            let outcome = match &e {
                FlushError::NoSpace { .. } => Outcome::NotReady,
                FlushError::Locked(_) | FlushError::Damaged(_) | FlushError::Unsupported(_) => {
                    Outcome::Refused
                }
                _ => Outcome::Error,
            };
            fail(cx, outcome, e.to_string(), data)
        }
    }
}

/// `BYTES`, `auto` or `env:NAME`; `None` for an unlimited cgroup.
fn parse_limit(spec: &str) -> Result<Option<u64>, String> {
    let bytes = |s: &str, what: &str| match parse_bytes(s) {
        Some(b) if b > 0 => Ok(Some(b)),
        _ => Err(format!(
            "--memory-limit {what}: expected bytes (512Mi, 2G, ...), auto or env:NAME"
        )),
    };
    if spec == "auto" {
        return detect_memory_limit()
            .map(|l| l.bytes)
            .map_err(|e| format!("reading the cgroup memory limit: {e}"));
    }
    if let Some(name) = spec.strip_prefix("env:") {
        let v = std::env::var(name).map_err(|_| {
            format!("--memory-limit {spec}: environment variable {name} is not set (feed it from the prometheus container's limits.memory with a resourceFieldRef)")
        })?;
        // A container without a limit gets the node's allocatable memory, a plain number.
        return bytes(v.trim(), &format!("{spec} = {v:?}"));
    }
    bytes(spec, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_bytes_and_env() {
        assert_eq!(parse_limit("512Mi"), Ok(Some(512 << 20)));
        std::env::set_var("WALFIX_TEST_LIMIT", "1073741824");
        assert_eq!(parse_limit("env:WALFIX_TEST_LIMIT"), Ok(Some(1 << 30)));
        assert!(parse_limit("env:WALFIX_TEST_UNSET_XYZ").is_err());
        assert!(parse_limit("lots").is_err());
    }
}
