//! `cargo run --example flush -- DATA_DIR [OUT_DIR]`: the library without the CLI.
fn main() {
    let mut a = std::env::args_os().skip(1);
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
