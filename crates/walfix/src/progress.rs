//! Progress of long reads, in bytes of segments read. The library only counts; whoever wants a
//! progress bar (the CLI draws one on a terminal) passes a callback.

use std::fmt;
use std::sync::Arc;

/// Told how many more bytes of segment files were read, from any thread, in no fixed order.
/// Cheap to clone; the default reports nothing.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// let read = Arc::new(AtomicU64::new(0));
/// let r = read.clone();
/// let p = walfix::Progress::new(move |n| {
///     r.fetch_add(n, Ordering::Relaxed);
/// });
/// p.advance(32768);
/// assert_eq!(read.load(Ordering::Relaxed), 32768);
/// ```
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(u64) + Send + Sync>>);

impl Progress {
    /// Calls `f` with the bytes of every segment once it has been read.
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(f)))
    }

    /// Reports `bytes` more read.
    pub fn advance(&self, bytes: u64) {
        if let Some(f) = &self.0 {
            f(bytes);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(on)"
        } else {
            "Progress(off)"
        })
    }
}
