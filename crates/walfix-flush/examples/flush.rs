//! `cargo run --example flush -- DATA_DIR [OUT_DIR]`: the library without the CLI;
//! `... -- --verify BLOCK_DIR`: read a block back with our reader and print its summary.
fn main() {
    let mut a = std::env::args_os().skip(1).peekable();
    if a.peek().is_some_and(|x| x == "--verify") {
        let dir = std::path::PathBuf::from(a.nth(1).expect("BLOCK_DIR"));
        match walfix_flush::read::read_block(&dir, |_, _| {}) {
            Ok(s) => println!(
                "{} series, {} chunks, {} samples",
                s.series, s.chunks, s.samples
            ),
            Err(e) => {
                eprintln!("{}: {e}", dir.display());
                std::process::exit(1);
            }
        }
        return;
    }
    let data = std::path::PathBuf::from(a.next().expect("DATA_DIR"));
    let opts = walfix_flush::FlushOptions {
        output_dir: a.next().map(Into::into),
        ..Default::default()
    };
    match walfix_flush::flush(&data, &opts) {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code().into());
        }
    }
}
