//! `walfix flush`: the WAL into persistent blocks (crate walfix-flush; docs/flush.md).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use walfix::report::show_path;
use walfix_flush::{flush, FlushError, FlushOptions, FlushReport};
use walfix_format::text::escape_controls;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  blocks written and verified (with --dry-run: the plan printed)
  2  refused: Prometheus holds the data dir, the WAL is damaged (run `walfix repair`), the
     WAL holds what this version cannot write (out-of-order samples in wbl/), or the output's
     file system has too little free space (the bytes needed and free are named)
  3  failed: I/O error, bad path, or a block that did not read back as written (removed;
     nothing half-written is left under a block name)";

#[derive(clap::Args)]
pub struct FlushArgs {
    /// The Prometheus data dir (the one holding wal/). Prometheus must not be running on it.
    data_dir: PathBuf,
    /// Read the WAL and print the blocks that would be written; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Write the blocks here instead of into DATA_DIR (for tests, or to check them first).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Where wal/, chunks_head/, wbl/ and chunk_snapshot.* move once the blocks are in place
    /// (a new run directory under it; default DATA_DIR/walfix-backup, as repair's).
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// Leave wal/, chunks_head/, wbl/ and chunk_snapshot.* in place (Prometheus then replays
    /// the WAL again, and drops every sample before the blocks' end).
    #[arg(long)]
    keep_wal: bool,
}

fn ms(t: i64) -> String {
    crate::human::rfc3339_ms(t)
}

fn human(out: &mut impl Write, r: &FlushReport) -> io::Result<()> {
    if !r.wal_found {
        return writeln!(
            out,
            "walfix flush: {}: nothing to flush: no wal/ (a flush that moved it to the backup is done)",
            show_path(&r.data_dir)
        );
    }
    let verb = if r.dry_run { "would write" } else { "wrote" };
    writeln!(
        out,
        "walfix flush: {} -> {}{}",
        show_path(&r.data_dir),
        show_path(&r.output_dir),
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "read: {} segments{}, {} records, {} series, {} float samples",
        r.segments,
        r.checkpoint
            .map(|c| format!(" (checkpoint.{c:08} first)"))
            .unwrap_or_default(),
        r.records,
        r.series,
        r.float_samples
    )?;
    for b in &r.blocks {
        writeln!(
            out,
            "{verb} block {}  [{}, {})  {} series, {} samples, {} chunks, {} tombstones{}",
            b.ulid,
            ms(b.min_time),
            ms(b.max_time),
            b.series,
            b.samples,
            b.chunks,
            b.tombstones,
            if b.written {
                format!(
                    ", index {} B, chunks {} B, verified",
                    b.index_bytes, b.chunk_bytes
                )
            } else {
                String::new()
            }
        )?;
    }
    if r.blocks.is_empty() {
        writeln!(out, "no block to write: no float sample to keep")?;
    }
    writeln!(
        out,
        "samples in blocks: {}; dropped as replay drops them: {} not after their series' last sample, {} of unknown series, {} before the existing blocks' end{}",
        r.samples_written,
        r.dropped_out_of_order,
        r.dropped_unknown_ref,
        r.dropped_before_blocks,
        r.min_valid_time
            .map(|t| format!(" ({})", ms(t)))
            .unwrap_or_default()
    )?;
    let n = &r.not_written;
    if n.histogram_samples + n.exemplars + n.metadata > 0 {
        writeln!(
            out,
            "not written: {} native histogram samples (not supported by this version), {} exemplars, {} metadata entries (blocks hold neither)",
            n.histogram_samples, n.exemplars, n.metadata
        )?;
    }
    if r.tombstones + r.tombstones_skipped > 0 {
        writeln!(
            out,
            "deletions: {} tombstone intervals written into the blocks they overlap, {} skipped as replay skips them",
            r.tombstones, r.tombstones_skipped
        )?;
    }
    let d = &r.disk;
    writeln!(
        out,
        "disk: spill {} B, blocks {} B{}, peak about {} B ({} B free after the pass)",
        d.spill_bytes,
        if r.dry_run {
            d.blocks_bytes_estimate
        } else {
            d.blocks_bytes
        },
        if r.dry_run { " at most" } else { "" },
        d.peak_bytes_estimate,
        d.free_bytes
    )?;
    if r.series_without_samples > 0 {
        writeln!(
            out,
            "{} series have no float sample to keep and are in no block",
            r.series_without_samples
        )?;
    }
    let names = |v: &mut dyn Iterator<Item = &std::path::Path>| {
        v.map(|p| {
            p.file_name().map_or_else(
                || show_path(p),
                |n| escape_controls(&n.to_string_lossy()).into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
    };
    match (&r.handover, &r.wal_kept) {
        (Some(h), _) => {
            let bytes: u64 = h.moved.iter().map(|m| m.bytes).sum();
            writeln!(
                out,
                "moved to {} ({} B): {}; Prometheus starts from the blocks with an empty WAL",
                show_path(&h.backup_run),
                bytes,
                names(&mut h.moved.iter().map(|m| m.path.as_path()))
            )?;
        }
        (None, Some(why)) => writeln!(
            out,
            "left in place ({}): {}; a Prometheus started on the data dir replays them and drops every sample before the blocks' end",
            escape_controls(why),
            names(&mut r.to_move.iter().map(|p| p.as_path()))
        )?,
        (None, None) if r.dry_run => writeln!(
            out,
            "would move to the backup after the blocks: {}",
            names(&mut r.to_move.iter().map(|p| p.as_path()))
        )?,
        (None, None) => {}
    }
    Ok(())
}

pub fn run(args: FlushArgs) -> ExitCode {
    // The check and then the pass each read the WAL: the bar covers both; writing the blocks
    // after them is not counted.
    let bar =
        crate::progress::Bar::over_path(&args.data_dir, walfix::WalFlavor::Server, 2, "reading");
    let opts = FlushOptions {
        output_dir: args.output_dir.clone(),
        dry_run: args.dry_run,
        backup_dir: args.backup_dir.clone(),
        keep_wal: args.keep_wal,
        progress: bar.progress(),
        ..FlushOptions::default()
    };
    let res = flush(&args.data_dir, &opts);
    drop(bar);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (code, written) = match &res {
        Ok(r) => {
            let w = if args.json {
                serde_json::to_writer(&mut out, r)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                human(&mut out, r)
            };
            (0u8, w)
        }
        Err(e) => {
            let code = e.exit_code();
            let msg = e.to_string();
            eprintln!(
                "walfix flush: {}: {}",
                show_path(&args.data_dir),
                escape_controls(&msg)
            );
            let w = if args.json {
                let kind = match e {
                    FlushError::Io(_) => "io",
                    FlushError::Locked(_) => "locked",
                    FlushError::Damaged(_) => "damaged",
                    FlushError::Unsupported(_) => "unsupported",
                    FlushError::NoSpace { .. } => "no_space",
                    FlushError::Verify { .. } => "verify",
                };
                let v = serde_json::json!({
                    "error": kind,
                    "message": e.to_string(),
                    "exit_code": code,
                });
                serde_json::to_writer(&mut out, &v)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                Ok(())
            };
            (code, w)
        }
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("walfix flush: writing output: {e}");
            return ExitCode::from(3);
        }
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc() {
        assert_eq!(super::ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
