//! Fuzz target `repair`: the property is `props::repair` in `fuzz/props.rs`, shared with
//! `crates/walfix/tests/fuzzed.rs`, which replays seeds and regression files under `cargo test`.
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::repair(data));
