//! `walfix repair`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;
use walfix::repair::{self, Action, Loss, Mode, Plan, RepairError, RepairOptions};
use walfix::report::show_path;
use walfix::{Report, Severity};
use walfix_format::text::escape_controls;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  the WAL is clean afterwards (or was already; with --dry-run: nothing to do)
  1  --dry-run only: changes are planned and would leave the WAL clean
  2  damage remains that walfix cannot fix alone (see `unresolved`)
  3  refused or failed: Prometheus holds the lock, backup not writable, no space, I/O error
     (a failed repair loses nothing: rerun it to finish)";

#[derive(clap::Args)]
pub struct RepairArgs {
    /// A Prometheus data dir, a wal/, wbl/ or checkpoint.N dir, or one segment file.
    path: PathBuf,
    /// Print the plan and stop.
    #[arg(long)]
    dry_run: bool,
    /// `salvage` removes only damaged records; `truncate` does what Prometheus does (drops
    /// everything after the first damage of each log).
    #[arg(long, value_enum, default_value_t = ModeArg::Salvage)]
    mode: ModeArg,
    /// Where removed bytes go (default: walfix-backup/ in the data dir).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Zero-pad the last page of the newest segment (for Prometheus before 2.11).
    #[arg(long)]
    pad: bool,
    /// Drop a damaged checkpoint instead of salvaging it (its series definitions are lost).
    #[arg(long)]
    drop_checkpoint: bool,
    /// Do not undo one-byte errors. By default salvage changes back a byte when it is the only
    /// one-byte change that makes a fragment's CRC-32C match and the record then decodes; each
    /// correction is listed in the plan.
    #[arg(long)]
    no_correct: bool,
    /// Repair even if the data dir's lock is held. Only when you know nothing writes the WAL.
    #[arg(long)]
    force: bool,
    /// Treat the WAL as a Prometheus agent WAL.
    #[arg(long)]
    agent: bool,
    /// Backups to keep in the backup dir (one directory per repair run; older ones are
    /// removed after a successful repair). 0 keeps every one.
    #[arg(long, default_value_t = 3, value_name = "N")]
    keep_backups: usize,
    /// If the newest segment was written less than SECONDS ago, watch it until it is that old
    /// and refuse if it changes (a Prometheus without a lock file is writing).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    live_wait: f64,
    /// Print one JSON object (schema walfix-repair/1) instead of the human report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Salvage,
    Truncate,
}

use crate::human::size;

fn loss_text(l: &Loss) -> String {
    let mut parts = Vec::new();
    if l.damaged_regions > 0 {
        parts.push(format!(
            "{} damaged region(s) whose records cannot be read",
            l.damaged_regions
        ));
    }
    if l.records > 0 {
        parts.push(format!(
            "{} readable record(s): {} series, {} samples, {} histograms, {} other entries",
            l.records, l.series, l.samples, l.histograms, l.other_entries
        ));
    }
    if !l.series_refs.is_empty() {
        parts.push(format!("series refs {:?}", l.series_refs));
    }
    if l.series_kept > 0 {
        parts.push(format!(
            "of which the first {} series entries of damaged series records are kept (written back as shorter records)",
            l.series_kept
        ));
    }
    if let (Some(a), Some(b)) = (l.min_time, l.max_time) {
        parts.push(format!(
            "time {} .. {}",
            crate::human::rfc3339_ms(a),
            crate::human::rfc3339_ms(b)
        ));
    }
    parts.push(format!("{} moved out of the WAL", size(l.bytes)));
    parts.join("; ")
}

fn describe(a: &Action) -> String {
    match a {
        Action::SalvageSegment {
            path,
            loss,
            corrections,
            ..
        } => {
            let mut s = format!(
                "salvage {}: rewrite it with every record that reads cleanly",
                show_path(path)
            );
            for c in corrections {
                s += &format!(
                    "\n       corrects byte {} (0x{:02x} -> 0x{:02x}, {} of the fragment at {}): the only one-byte change that makes its CRC-32C match, and the record then decodes",
                    c.offset, c.was, c.now, c.place, c.fragment
                );
            }
            s + &format!("\n       loses: {}", loss_text(loss))
        }
        Action::TruncateSegment { path, at, pad, loss } => format!(
            "truncate {} at byte {at}{}\n       loses: {}",
            show_path(path),
            if *pad { " and zero-pad the last page" } else { "" },
            loss_text(loss)
        ),
        Action::PadSegment { path, bytes } => {
            format!("zero-pad the last page of {} ({bytes} bytes)", show_path(path))
        }
        Action::DeleteSegment { path, loss } => format!(
            "remove segment {} (as Prometheus's repair would)\n       loses: {}",
            show_path(path),
            loss_text(loss)
        ),
        Action::RenameSegment { from, path } => format!(
            "rename {} to {} (Prometheus opens segments by their 8-digit name)",
            show_path(from),
            show_path(path)
        ),
        Action::CreateEmptySegment { path } => format!(
            "create empty segment {} to close a gap (Prometheus needs consecutive segments)",
            show_path(path)
        ),
        Action::CreateEmptyCheckpoint { path } => format!(
            "create {} with one empty segment, so replay starts right after it (no checkpoint and a first segment far above 0)",
            show_path(path)
        ),
        Action::MoveToBackup { path, why, .. } => {
            format!("move {} to the backup: {}", show_path(path), escape_controls(why))
        }
        Action::RecoverRepairFile {
            repair_path,
            segment_path,
            records_recovered,
            ..
        } => format!(
            "rebuild {} from {} (recovers {records_recovered} record(s) Prometheus's interrupted repair left behind)",
            show_path(segment_path),
            show_path(repair_path)
        ),
        Action::RemoveOwnTemp { path } => {
            format!("remove {} (a temp file of an interrupted walfix run)", show_path(path))
        }
        // A kind of action this CLI does not know yet: its path, at least.
        _ => format!("change {}", show_path(a.path())),
    }
}

#[derive(Serialize)]
struct JsonOut<'a> {
    schema: &'static str,
    dry_run: bool,
    plan: &'a Plan,
    done: usize,
    predicted: Option<AfterJson<'a>>,
    after: Option<AfterJson<'a>>,
    error: Option<String>,
    exit_code: u8,
}

#[derive(Serialize)]
struct AfterJson<'a> {
    worst: Severity,
    prometheus_outcome: &'a str,
    prometheus: &'a walfix::PrometheusOutcome,
    findings: &'a [walfix::Finding],
}

fn print_plan(out: &mut impl Write, p: &Plan) -> io::Result<()> {
    let mode = match p.mode {
        Mode::Salvage => "salvage",
        Mode::Truncate => "truncate",
        _ => "other",
    };
    writeln!(
        out,
        "walfix repair {}  [mode: {mode}]",
        show_path(&p.before.root)
    )?;
    writeln!(out, "Before: {}", p.before.prometheus_outcome)?;
    if p.actions.is_empty() {
        writeln!(out, "Nothing to change.")?;
    } else {
        writeln!(
            out,
            "Plan: {} change(s); backup {} in {}",
            p.actions.len(),
            size(p.backup_bytes),
            show_path(&p.backup_run)
        )?;
        for (i, a) in p.actions.iter().enumerate() {
            writeln!(out, "  {:>2}. {}", i + 1, describe(a))?;
        }
        writeln!(out, "Total loss: {}", loss_text(&p.loss))?;
    }
    for u in &p.unresolved {
        writeln!(out, "Unresolved: {}", escape_controls(u))?;
    }
    Ok(())
}

fn print_after(out: &mut impl Write, label: &str, after: &Report) -> io::Result<()> {
    writeln!(out, "{label}: {}", after.prometheus_outcome)?;
    for f in after.findings_at_least(Severity::Warning) {
        writeln!(
            out,
            "  {} [{}] {}: {}",
            f.severity.name(),
            f.kind,
            show_path(&f.file),
            escape_controls(&f.message)
        )?;
    }
    Ok(())
}

pub fn run(args: RepairArgs) -> ExitCode {
    let flavor = if args.agent {
        walfix::WalFlavor::Agent
    } else {
        walfix::WalFlavor::Server
    };
    // Over the plan's full check, the long part; what follows reads what changes.
    let bar = crate::progress::Bar::over_path(&args.path, flavor, 1, "checking");
    let opts = RepairOptions {
        mode: match args.mode {
            ModeArg::Salvage => Mode::Salvage,
            ModeArg::Truncate => Mode::Truncate,
        },
        flavor,
        backup_dir: args.backup_dir.clone(),
        pad: args.pad,
        force: args.force,
        drop_checkpoint: args.drop_checkpoint,
        no_correct: args.no_correct,
        keep_backups: (args.keep_backups > 0).then_some(args.keep_backups),
        live_wait: std::time::Duration::from_secs_f64(args.live_wait.clamp(0.0, 3600.0)),
        progress: bar.progress(),
    };
    let plan = match repair::plan(&args.path, &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "walfix repair: {}: {}",
                show_path(&args.path),
                escape_controls(&e.to_string())
            );
            return ExitCode::from(3);
        }
    };
    drop(bar);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    // What the WAL will look like afterwards, checked on a scratch copy before anything changes.
    let predicted = if plan.actions.is_empty() {
        None
    } else {
        match repair::predict(&plan, &opts) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!(
                    "walfix repair: cannot predict the result: {}",
                    escape_controls(&e.to_string())
                );
                None
            }
        }
    };
    use walfix::exit::RepairRun;
    let (outcome, err): (Option<repair::Outcome>, Option<RepairError>) = if args.dry_run {
        (None, None)
    } else {
        match repair::execute(&plan, &opts, &walfix::fsops::RealFs) {
            Ok(o) => (Some(o), None),
            Err(e) => (None, Some(e)),
        }
    };
    let run = match (&outcome, &err) {
        (_, Some(_)) => RepairRun::Failed,
        (Some(o), None) => RepairRun::Done(o),
        (None, None) => RepairRun::DryRun,
    };
    let code = walfix::exit::repair(&plan, predicted.as_ref(), run);
    let res = if args.json {
        let j = JsonOut {
            schema: "walfix-repair/1",
            dry_run: args.dry_run,
            plan: &plan,
            done: outcome.as_ref().map_or(0, |o| o.done),
            predicted: predicted.as_ref().map(|r| AfterJson {
                worst: r.worst,
                prometheus_outcome: &r.prometheus_outcome,
                prometheus: &r.prometheus,
                findings: &r.findings,
            }),
            after: outcome.as_ref().map(|o| AfterJson {
                worst: o.after.worst,
                prometheus_outcome: &o.after.prometheus_outcome,
                prometheus: &o.after.prometheus,
                findings: &o.after.findings,
            }),
            error: err.as_ref().map(|e| e.to_string()),
            exit_code: code,
        };
        serde_json::to_writer(&mut out, &j)
            .map_err(io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        print_plan(&mut out, &plan).and_then(|_| {
            if let Some(r) = &predicted {
                print_after(&mut out, "Predicted after repair", r)?;
            }
            if args.dry_run {
                writeln!(out, "Dry run: nothing was changed.")
            } else if let Some(o) = &outcome {
                if o.done > 0 {
                    writeln!(
                        out,
                        "Done: {} change(s) made; removed bytes are in {}",
                        o.done,
                        show_path(&plan.backup_run)
                    )?;
                    for p in &o.pruned {
                        writeln!(out, "Removed old backup {} (--keep-backups)", show_path(p))?;
                    }
                    print_after(&mut out, "After", &o.after)
                } else {
                    writeln!(out, "Nothing changed.")
                }
            } else {
                Ok(())
            }
        })
    }
    .and_then(|_| out.flush());
    if let Some(e) = &err {
        eprintln!("walfix repair: {}", escape_controls(&e.to_string()));
    }
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("walfix: writing output: {e}");
            ExitCode::from(3)
        }
        _ => ExitCode::from(code),
    }
}
