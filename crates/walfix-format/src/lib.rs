//! Bytes of the Prometheus write-ahead log: pages, fragments, CRC-32C, compression and records.
//!
//! This crate does no I/O. Everything works on borrowed `&[u8]` and reports offsets relative to
//! the slice it was given.

pub mod compression;
pub mod correct;
pub mod crc;
pub mod encode;
pub mod fragment;
pub mod frames;
pub mod record;
pub mod text;
