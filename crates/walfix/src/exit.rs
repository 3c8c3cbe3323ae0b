//! Exit codes of `walfix check` and `walfix repair`, decided here from library values so that
//! every front end agrees (docs/json-output.md, docs/repair.md).

use crate::repair::{Outcome, Plan};
use crate::report::{Report, Severity};

/// `walfix check`: 0 clean or warnings only, 1 damage `walfix repair` fixes, 2 damage that
/// needs a human, 3 a file could not be read ([`Severity::exit_code`] of the worst finding).
pub fn check(report: &Report) -> i32 {
    report.worst.exit_code()
}

/// How a `walfix repair` run ended.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum RepairRun<'a> {
    /// `--dry-run`: nothing was changed.
    DryRun,
    /// The plan was carried out.
    Done(&'a Outcome),
    /// Refused or failed (lock, live Prometheus, backup, space, I/O).
    Failed,
}

/// `walfix repair`: 0 clean afterwards (or nothing to do), 1 a dry run whose changes would
/// leave the WAL clean, 2 damage remains that walfix cannot fix alone (unresolved, or the
/// predicted or actual result still repairable or worse), 3 refused or failed.
pub fn repair(plan: &Plan, predicted: Option<&Report>, run: RepairRun<'_>) -> u8 {
    let unresolved = !plan.unresolved.is_empty();
    match run {
        RepairRun::Failed => 3,
        RepairRun::DryRun => {
            let bad = predicted.is_some_and(|r| r.worst >= Severity::Repairable);
            if unresolved || bad {
                2
            } else if plan.actions.is_empty() {
                0
            } else {
                1
            }
        }
        RepairRun::Done(o) => {
            if o.after.worst >= Severity::Repairable || unresolved {
                2
            } else {
                0
            }
        }
    }
}
