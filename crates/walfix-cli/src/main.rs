//! `walfix`: check Prometheus write-ahead logs.

mod dump_cmd;
mod estimate_cmd;
mod flush_cmd;
mod human;
mod jsonl;
mod preflight_cmd;
mod progress;
mod repair_cmd;
mod stats_cmd;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use walfix::report::show_path;

const EXIT_CODES: &str = "\
Exit codes (made for a Kubernetes initContainer):
  0  clean: Prometheus will replay everything (warnings allowed)
  1  damage that `walfix repair` fixes on its own (torn tail, CRC mismatch, bad records...)
  2  damage that needs a human decision (segment gap, missing segment, checkpoint damage,
     anything that keeps Prometheus from starting)
  3  operational error: a file could not be read, bad usage, bad path";

#[derive(Parser)]
#[command(name = "walfix", version, about = "Check and repair Prometheus write-ahead logs (WAL, WBL, checkpoints).", after_help = EXIT_CODES)]
struct Cli {
    /// No progress bar, and no human report on stdout: the exit code says the outcome. Errors
    /// still go to stderr; `--json` output and dump's records are still printed, and preflight
    /// keeps its report (it runs before Prometheus, whose stdout it hands on).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a WAL read-only and report every problem with what Prometheus would do about it.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Repair a WAL offline: plan from a full check, back up every removed byte, write atomically.
    #[command(after_help = repair_cmd::EXIT_CODES)]
    Repair(repair_cmd::RepairArgs),
    Estimate(estimate_cmd::EstimateArgs),
    /// Before Prometheus starts in a pod: data dir, live Prometheus, permissions, free space,
    /// WAL (repaired when safe) and memory, with one exit code; then exec Prometheus if asked.
    Preflight(preflight_cmd::PreflightArgs),
    /// Write the WAL's float samples into persistent TSDB blocks that Prometheus loads
    /// (verified before they are renamed into place); the WAL itself is left where it is.
    #[command(after_help = flush_cmd::EXIT_CODES)]
    Flush(flush_cmd::FlushArgs),
    /// Print a WAL's entries as JSON Lines in replay order, filtered by type, selector, time
    /// and segment.
    Dump(dump_cmd::DumpArgs),
    /// Count records, series and samples per log and segment; rank metrics, label values and
    /// targets by series and by series created (churn).
    Stats(stats_cmd::StatsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `walfix man > walfix.1`.
    Man,
    /// Copy this binary to DEST (mode 0755, atomically): how an initContainer hands the static
    /// walfix to the Prometheus container through an emptyDir, for `preflight -- prometheus ...`.
    SelfInstall {
        /// Where to put the binary, e.g. /walfix-bin/walfix.
        dest: PathBuf,
    },
}

#[derive(clap::Args)]
struct CheckArgs {
    /// A Prometheus data dir, a wal/, wbl/ or checkpoint.N dir, or one segment file.
    path: PathBuf,
    /// Print JSON Lines (schema in docs/json-output.md) instead of the human report.
    #[arg(long)]
    json: bool,
    /// How deep to read: `frames` checks pages, fragments and CRCs only; `records` also
    /// decompresses and decodes every record.
    #[arg(long, value_enum, default_value_t = LevelArg::Records)]
    level: LevelArg,
    /// Treat the WAL as a Prometheus agent WAL (its replay rejects more record types).
    #[arg(long)]
    agent: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LevelArg {
    Frames,
    Records,
}

const EXIT_OPERATIONAL: u8 = 3;

fn main() -> ExitCode {
    // The binary owns its process: map segments behind the SIGBUS guard, cap malloc's
    // retention (walfix::mmap::enable_process_wide).
    walfix::mmap::enable_process_wide();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_OPERATIONAL } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    progress::set_quiet(cli.quiet);
    let human_report = match &cli.command {
        Command::Check(a) => !a.json,
        Command::Repair(a) => !a.json,
        Command::Estimate(a) => !a.json,
        Command::Flush(a) => !a.json,
        Command::Stats(a) => !a.json,
        _ => false,
    };
    if cli.quiet && human_report {
        if let Err(e) = progress::mute_stdout() {
            eprintln!("walfix: -q: cannot redirect stdout to /dev/null: {e}");
            return ExitCode::from(EXIT_OPERATIONAL);
        }
    }
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Repair(args) => repair_cmd::run(args),
        Command::Estimate(args) => estimate_cmd::run(args),
        Command::Preflight(args) => preflight_cmd::run(args),
        Command::Flush(args) => flush_cmd::run(args),
        Command::Dump(args) => dump_cmd::run(args),
        Command::Stats(args) => stats_cmd::run(args),
        Command::SelfInstall { dest } => self_install(&dest),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "walfix", &mut io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = io::stdout().lock();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("walfix man: {e}");
                    ExitCode::from(EXIT_OPERATIONAL)
                }
            }
        }
    }
}

fn self_install(dest: &std::path::Path) -> ExitCode {
    let res = std::env::current_exe().and_then(|exe| {
        let fs_ = walfix::fsops::RealFs;
        let mut src = std::fs::File::open(&exe)?;
        walfix::fsops::replace_file(&fs_, dest, &mut |w| io::copy(&mut src, w).map(|_| ()))?;
        walfix::fsops::set_owner_mode(dest, None, 0o755)
    });
    match res {
        Ok(()) => {
            println!("walfix: installed {}", show_path(dest));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("walfix self-install: {}: {e}", show_path(dest));
            ExitCode::from(EXIT_OPERATIONAL)
        }
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    if let Some(n) = args.threads {
        // Only fails if a pool exists already, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let opts = walfix::CheckOptions {
        level: match args.level {
            LevelArg::Frames => walfix::Level::Frames,
            LevelArg::Records => walfix::Level::Records,
        },
        flavor: if args.agent {
            walfix::WalFlavor::Agent
        } else {
            walfix::WalFlavor::Server
        },
        ..Default::default()
    };
    let report = match walfix::layout::discover(&args.path, opts.flavor) {
        Ok(layout) => {
            let bar = progress::Bar::bytes(progress::layout_bytes(&layout), "checking");
            let opts = walfix::CheckOptions {
                progress: bar.progress(),
                ..opts.clone()
            };
            walfix::check_layout(&layout, &opts)
        }
        Err(e) => {
            eprintln!(
                "walfix: {}: {}",
                show_path(&args.path),
                walfix_format::text::escape_controls(&e.to_string())
            );
            if args.json {
                // A consumer reading stdout learns why there is no report (docs/json-output.md).
                let mut out = io::stdout().lock();
                let _ = jsonl::write_error(
                    &mut out,
                    &args.path,
                    &e.to_string(),
                    EXIT_OPERATIONAL.into(),
                )
                .and_then(|_| out.flush());
            }
            return ExitCode::from(EXIT_OPERATIONAL);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let res = if args.json {
        jsonl::write(&mut out, &report)
    } else {
        human::write(&mut out, &report, opts.level)
    }
    .and_then(|_| out.flush());
    match res {
        Ok(()) => {}
        // A closed pipe (`walfix check ... | head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("walfix: writing output: {e}");
            return ExitCode::from(EXIT_OPERATIONAL);
        }
    }
    ExitCode::from(report.exit_code as u8)
}
