//! Reading segments for the scan: frames, CRCs, decompression and decoding, on worker threads.
//!
//! Each segment is read by one worker, a window at a time (see [`read_windows`]), exactly as one
//! thread would; what its records hold is handed over in [`Batch`]es, in order, through a small
//! bounded channel per segment. The scan applies segments in replay order, so everything that
//! depends on order (series table, chunk simulation, timeline) sees the records as before;
//! workers only run ahead by a few batches, so memory stays bounded by them, not by the WAL.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use walfix_format::fragment::{page_start, PAGE_SIZE};
use walfix_format::frames::{RecordEvent, RecordReader};
use walfix_format::record::{self, Acceptance, LogKind, RecordType, Sample, Visitor};

/// A float sample as the decoder hands it over: ref, time, value bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decoded {
    pub r: u64,
    pub t: i64,
    pub v: u64,
}

/// One record, as far as the scan cares.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Item {
    /// Empty, or of a type this log does not replay: counted only.
    Skipped,
    /// Rejected as a whole by the decoder (a problem).
    Invalid,
    /// A samples record: its samples end at this index of [`Batch::samples`].
    Samples(usize),
    /// Any other record: its bytes end at this index of [`Batch::bytes`], to be visited.
    Visit(usize),
}

/// The records of part of a segment, in order.
#[derive(Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub samples: Vec<Decoded>,
    pub bytes: Vec<u8>,
    /// Framing and decompression problems found in this part.
    pub problems: u64,
}

impl Batch {
    fn clear(&mut self) {
        self.items.clear();
        self.samples.clear();
        self.bytes.clear();
        self.problems = 0;
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.problems == 0
    }
}

/// A batch is handed over once it holds this many samples (or bytes), at a record's end.
const BATCH_SAMPLES: usize = 64 << 10;
const BATCH_BYTES: usize = 1 << 20;
/// Batches a worker may be ahead of the scan on its segment.
const AHEAD: usize = 1;

struct SampleSink<'a>(&'a mut Vec<Decoded>);

impl Visitor for SampleSink<'_> {
    fn sample(&mut self, s: &Sample) {
        self.0.push(Decoded {
            r: s.series_ref,
            t: s.t,
            v: s.v.to_bits(),
        });
    }

    fn samples(&mut self, batch: &[Sample]) {
        self.0.extend(batch.iter().map(|s| Decoded {
            r: s.series_ref,
            t: s.t,
            v: s.v.to_bits(),
        }));
    }
}

/// Decodes one decompressed record into `b`. A record the decoder rejects is rejected whole
/// (Prometheus does), so its samples are dropped again.
fn decode_record(kind: LogKind, data: &[u8], b: &mut Batch) {
    let Some(&tb) = data.first() else {
        b.items.push(Item::Skipped);
        return;
    };
    let t = RecordType::from_u8(tb);
    if kind.accepts(t) != Acceptance::Expected {
        b.items.push(Item::Skipped);
        return;
    }
    if matches!(t, Some(RecordType::Samples | RecordType::SamplesV2)) {
        let mark = b.samples.len();
        if record::visit(data, &mut SampleSink(&mut b.samples)).is_err() {
            b.samples.truncate(mark);
            b.items.push(Item::Invalid);
        } else {
            b.items.push(Item::Samples(b.samples.len()));
        }
        return;
    }
    if record::validate(data).is_err() {
        b.items.push(Item::Invalid);
        return;
    }
    b.bytes.extend_from_slice(data);
    b.items.push(Item::Visit(b.bytes.len()));
}

/// Reusable buffers: batches go back here once applied.
#[derive(Default)]
pub(crate) struct Pool {
    free: Mutex<Vec<Batch>>,
}

impl Pool {
    fn take(&self) -> Batch {
        self.free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default()
    }

    pub fn give(&self, mut b: Batch) {
        b.clear();
        if let Ok(mut f) = self.free.lock() {
            f.push(b);
        }
    }
}

/// Reads one segment a window at a time, so that memory stays bounded by the window and the
/// largest record instead of the segment (up to 128 MiB), resident or mapped.
///
/// Each window starts on a page boundary, as `SegmentReader` needs. A window after the first
/// starts inside the page where the last whole record ended: records before that point are
/// skipped (already seen), and the orphan fragment the window may open with is a problem of the
/// cut, not of the segment. The record cut at a window's end is read again by the next window.
/// `emit` gets the batches in order; it returns false to stop.
pub(crate) fn read_windows(
    file: &mut File,
    len: usize,
    kind: LogKind,
    base_window: usize,
    pool: &Pool,
    emit: &mut dyn FnMut(Batch) -> bool,
) -> io::Result<()> {
    let mut start = 0usize;
    let mut cursor = 0usize;
    let base_window = base_window.max(PAGE_SIZE);
    let mut window = base_window;
    let mut problems: Vec<usize> = Vec::new();
    let mut bufs = (Vec::new(), Vec::new());
    let mut buf: Vec<u8> = Vec::new();
    let mut batch = pool.take();
    while start < len {
        let take = window.min(len - start);
        let last = start + take == len;
        buf.resize(take, 0);
        file.seek(SeekFrom::Start(start as u64))?;
        file.read_exact(&mut buf)?;
        let mut end = cursor;
        problems.clear();
        let (a, b) = std::mem::take(&mut bufs);
        let mut r = RecordReader::with_buffers(&buf, a, b);
        while let Some(ev) = r.next() {
            let rec = match ev {
                RecordEvent::Problem(p) => {
                    if p.is_error() && start + p.offset >= cursor {
                        problems.push(start + p.offset);
                    }
                    continue;
                }
                RecordEvent::Record(rec) => rec,
            };
            if start + rec.offset < cursor {
                continue;
            }
            end = start + rec.end;
            decode_record(kind, rec.data, &mut batch);
            let full = batch.samples.len() >= BATCH_SAMPLES || batch.bytes.len() >= BATCH_BYTES;
            if full && !emit(std::mem::replace(&mut batch, pool.take())) {
                return Ok(());
            }
        }
        bufs = r.into_buffers();
        // Problems between whole records are real; those after the last one are the cut,
        // unless this window reaches the end of the segment.
        batch.problems += problems.iter().filter(|&&o| last || o < end).count() as u64;
        if last {
            break;
        }
        if end == cursor {
            // Not one whole record in the window: widen it.
            window = window.saturating_mul(2);
            continue;
        }
        cursor = end;
        start = page_start(cursor);
        window = base_window;
    }
    if !batch.is_empty() {
        emit(batch);
    } else {
        pool.give(batch);
    }
    Ok(())
}

/// What a worker says about one segment, in order.
pub(crate) enum Msg {
    /// Opened: its length.
    Opened(u64),
    /// Some of its records.
    Batch(Batch),
    /// Read to the end, or failed (then nothing more comes).
    Done(io::Result<()>),
}

/// One segment to read.
pub(crate) struct Job<'a> {
    pub path: &'a Path,
    pub kind: LogKind,
}

/// Reads one segment, handing what it finds to `send` (false: stop).
pub(crate) fn read_segment(
    job: &Job<'_>,
    window: usize,
    pool: &Pool,
    send: &mut dyn FnMut(Msg) -> bool,
) {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", job.path.display()));
    let opened = File::open(job.path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (len, mut file) = match opened {
        Ok(x) => x,
        Err(e) => {
            send(Msg::Done(Err(named(e))));
            return;
        }
    };
    if !send(Msg::Opened(len)) {
        return;
    }
    let mut stopped = false;
    let res = read_windows(&mut file, len as usize, job.kind, window, pool, &mut |b| {
        let ok = send(Msg::Batch(b));
        stopped |= !ok;
        ok
    });
    if !stopped {
        send(Msg::Done(res.map_err(named)));
    }
}

/// Reads `jobs` on `threads` workers (at least one), and hands each segment's messages to
/// `consume` in job order. `consume` returns false to stop early.
pub(crate) fn read_parallel(
    jobs: &[Job<'_>],
    threads: usize,
    window: usize,
    pool: &Pool,
    consume: &mut dyn FnMut(usize, Msg) -> bool,
) {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (senders, receivers): (Vec<SyncSender<Msg>>, Vec<Receiver<Msg>>) =
        (0..jobs.len()).map(|_| sync_channel(AHEAD)).unzip();
    let senders = Mutex::new(senders.into_iter().map(Some).collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else {
                    return;
                };
                let Some(tx) = senders.lock().ok().and_then(|mut v| v[i].take()) else {
                    return;
                };
                read_segment(job, window, pool, &mut |m| tx.send(m).is_ok());
            });
        }
        // Dropping the receivers (at the end of this closure, before the workers are joined)
        // unblocks any worker still sending after an early stop.
        let receivers = receivers;
        'jobs: for (i, rx) in receivers.iter().enumerate() {
            loop {
                let Ok(m) = rx.recv() else {
                    // A worker stopped without saying why: cannot happen (it always ends with
                    // Done unless we stopped first).
                    stop.store(true, Ordering::Relaxed);
                    break 'jobs;
                };
                let done = matches!(m, Msg::Done(_));
                if !consume(i, m) {
                    stop.store(true, Ordering::Relaxed);
                    break 'jobs;
                }
                if done {
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}
