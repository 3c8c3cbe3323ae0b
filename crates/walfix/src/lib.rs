//! Check and repair Prometheus write-ahead logs on disk.
//!
//! `walfix` finds the logs under a path ([`layout`]), maps their segments ([`mmap`]), scans
//! them in parallel ([`scan`]) with the byte-level reader of [`walfix_format`], and reports every
//! problem with what Prometheus would do about it ([`report`]).

pub mod check;
pub mod fsops;
pub mod layout;
pub mod live;
pub mod mmap;
pub mod perms;
pub mod refset;
pub mod repair;
pub mod replay;
pub mod report;
pub mod scan;
pub mod space;

pub use check::{check, check_layout, CheckOptions};
pub use layout::WalFlavor;
pub use report::{Finding, Report, Severity, Stats};
pub use scan::Level;
