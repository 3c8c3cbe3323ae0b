//! `synth_wal SPEC OUT_DATA_DIR [SEGMENT_BYTES]`: writes the deterministic synthetic WAL of a
//! workload spec (see `tests/support/synth.rs`) into `OUT_DATA_DIR/wal/` and prints one line:
//! the spec and counts, with an FNV-1a 64 hash of the bytes. Used by `scripts/measure-memory.sh`.

#[path = "../tests/support/synth.rs"]
mod synth;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: synth_wal SPEC OUT_DATA_DIR [SEGMENT_BYTES]");
        return ExitCode::from(2);
    }
    let w = match synth::Workload::parse(&args[0]) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("synth_wal: {e}");
            return ExitCode::from(2);
        }
    };
    let seg = match args.get(2).map(|s| s.parse::<usize>()) {
        None => synth::SEGMENT_SIZE,
        Some(Ok(n)) if n >= 64 * 1024 => n,
        Some(_) => {
            eprintln!("synth_wal: SEGMENT_BYTES must be a number >= 65536");
            return ExitCode::from(2);
        }
    };
    let wal = Path::new(&args[1]).join("wal");
    if wal.exists() {
        eprintln!("synth_wal: {} exists", wal.display());
        return ExitCode::from(2);
    }
    match w.write(&wal, seg) {
        Ok(n) => {
            println!("{}", synth::describe(&w, &n));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth_wal: {}: {e}", wal.display());
            ExitCode::from(3)
        }
    }
}
