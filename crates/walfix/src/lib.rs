//! Check and repair Prometheus write-ahead logs on disk.
//!
//! `walfix` finds the logs under a path ([`layout`]), maps their segments ([`mmap`]), scans
//! them in parallel ([`scan`]) with the byte-level reader of [`walfix_format`], and reports every
//! problem with what Prometheus would do about it ([`report`]). [`replay`] hands the records to
//! your own code in Prometheus's replay order.
//!
//! # Quickstart
//!
//! Read a data dir the way Prometheus replays it, count series per metric name, and list the
//! damage `walfix check` finds:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::ops::ControlFlow;
//! use walfix::replay::{read_segment, replay_order, Event};
//! use walfix::walfix_format::record::{visit, Series, Visitor};
//!
//! struct PerMetric(BTreeMap<Vec<u8>, u64>);
//! impl Visitor for PerMetric {
//!     fn series(&mut self, s: &Series<'_>) {
//!         let name = s.labels.get(b"__name__").unwrap_or_default();
//!         *self.0.entry(name.to_vec()).or_default() += 1;
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! # let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/corpora/small-clean--flip-byte");
//! // let data = "/prometheus";
//! let layout = walfix::layout::discover(data.as_ref(), walfix::WalFlavor::Server)?;
//! let mut per_metric = PerMetric(BTreeMap::new());
//! for seg in replay_order(&layout) {
//!     read_segment(&seg, &mut |ev| {
//!         if let Event::Record(r) = ev {
//!             // A record that does not decode is a finding of `check` below.
//!             let _ = visit(r.data, &mut per_metric);
//!         }
//!         ControlFlow::Continue(())
//!     })?;
//! }
//! for (name, n) in &per_metric.0 {
//!     println!("{:>6} {}", n, String::from_utf8_lossy(name));
//! }
//! # assert_eq!(per_metric.0[&b"up"[..]], 2);
//!
//! let report = walfix::check(data.as_ref(), &walfix::CheckOptions::default())?;
//! for f in report.findings_at_least(walfix::Severity::Repairable) {
//!     println!("{} [{}] {} at {:?}: {}", f.severity.name(), f.kind, f.file.display(), f.offset, f.message);
//! }
//! println!("{}", report.prometheus_outcome);
//! # assert_eq!(report.exit_code, 1);
//! # Ok(())
//! # }
//! ```

pub mod check;
pub mod exit;
pub mod fsops;
pub mod layout;
pub mod live;
pub mod mmap;
pub mod perms;
pub mod progress;
pub mod refset;
pub mod repair;
pub mod replay;
pub mod report;
pub mod scan;
pub mod space;

/// The byte-level crate underneath: pages, fragments, records, the encoder.
pub use walfix_format;

pub use check::{check, check_layout, CheckOptions};
pub use layout::WalFlavor;
pub use progress::Progress;
pub use report::{Finding, FindingKind, PrometheusOutcome, Report, Severity, Stats};
pub use scan::Level;
