//! `-q` and the progress bar: progress goes to stderr, only when stderr is a terminal and `-q`
//! is off, so pipes, CI logs and pods never see it. It is plain text (no colour), so NO_COLOR
//! holds whatever the terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once from `-q` before a command runs.
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// True under `-q`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// True if a bar would be drawn: stderr is a terminal and `-q` is off.
fn shown() -> bool {
    !quiet() && std::io::stderr().is_terminal()
}

/// Bytes of every segment under a layout (checkpoints included): what a full read covers.
pub fn layout_bytes(layout: &walfix::layout::Layout) -> u64 {
    layout
        .logs
        .iter()
        .map(|l| {
            let own: u64 = l.segments.iter().map(|s| s.len).sum();
            let ck: u64 = l
                .checkpoint
                .as_ref()
                .map_or(0, |c| c.log.segments.iter().map(|s| s.len).sum());
            own + ck
        })
        .sum()
}

/// A bar over a number of bytes, cleared when dropped. Hidden (and free) when stderr is not a
/// terminal or under `-q`.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// `what` names the step, e.g. `checking`.
    pub fn bytes(total: u64, what: &str) -> Bar {
        if !shown() || total == 0 {
            return Bar(None);
        }
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        pb.set_style(style);
        pb.set_message(what.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(pb))
    }

    /// A bar over `passes` full reads of the logs under `path`. The layout is only listed
    /// (to size the bar) when the bar is drawn.
    pub fn over_path(path: &Path, flavor: walfix::WalFlavor, passes: u64, what: &str) -> Bar {
        if !shown() {
            return Bar(None);
        }
        let total = walfix::layout::discover(path, flavor).map_or(0, |l| passes * layout_bytes(&l));
        Bar::bytes(total, what)
    }

    /// What the library is given to move the bar.
    pub fn progress(&self) -> walfix::Progress {
        match &self.0 {
            Some(pb) => {
                let pb = pb.clone();
                walfix::Progress::new(move |n| pb.inc(n))
            }
            None => walfix::Progress::default(),
        }
    }

    /// Moves the bar by `n` bytes (for loops in the CLI itself).
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// Under `-q` without `--json`: stdout is pointed at /dev/null for the rest of the process,
/// so no report line is printed by whichever code writes it. Errors still go to stderr and
/// the exit code is unchanged.
pub fn mute_stdout() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok(())
}
