//! Random access into an unmodified gzip stream (zlib's zran idea): one pass over the stream
//! records checkpoints, deflate block boundaries where decoding can start again given the 32 KiB
//! of output before them (the window) and the bits of the boundary's byte already consumed; a
//! range of the output is then decoded from the checkpoint before it, from the stored bytes on.
//!
//! `GzipIndexer` is the pass: input pushed in network-sized pieces, output pulled in bounded
//! pieces (a few KiB of input can expand to gigabytes), and beside the output, the checkpoints
//! (at most one per `span` of output) and marks, (input, output) offsets at every block boundary
//! and every 16 KiB of output, from which a caller tells which stored bytes hold a range of output. Several gzip members one
//! after another are one stream, as gzip itself reads them.
//!
//! `extract` decodes from a checkpoint: only `skip + dst.len()` bytes of output, whatever the
//! stored bytes would make. Nothing here checks the data: callers verify what they extract.

use crate::error::{arg, NativeError, Result};
use crate::member::{fill, Member};
use crate::zlib_ffi::*;
use std::os::raw::c_int;

/// The output piece to pull at a time, as for the zstd stream.
pub const OUT_PIECE: usize = 1 << 20;
/// Output between marks inside a deflate block.
const MARK_EVERY: usize = 16 << 10;

/// Where decoding may start again: `input` bytes into the stream, `bits` of the byte before it
/// not yet consumed (0–7), `output` bytes into the output, and the output's last bytes before it.
pub struct Checkpoint {
    pub input: u64,
    pub output: u64,
    pub bits: u8,
    pub window: Vec<u8>,
}

pub struct GzipIndexer {
    inflater: Inflater,
    span: u64,
    input: Vec<u8>,
    taken: usize,
    drained: bool,
    total_in: u64,
    total_out: u64,
    /// The last WINDOW_SIZE bytes of output, a ring written at `ring_at`.
    ring: Vec<u8>,
    ring_at: usize,
    last_checkpoint: Option<u64>,
    /// A member ended and no next one has begun: the only state the stream may finish in.
    between_members: bool,
    /// Checkpoints whose window is not yet reduced to the bytes decoding from them uses (sparse).
    pending: std::collections::VecDeque<Checkpoint>,
    /// The stream's bytes from `tail_from` on: what the pending checkpoints decode from.
    tail: Vec<u8>,
    tail_from: u64,
    checkpoints: Vec<Checkpoint>,
    /// Block boundaries since the last `take`, as input, output pairs.
    marks: Vec<f64>,
}

impl GzipIndexer {
    pub fn new(span: usize) -> Result<GzipIndexer> {
        if span < WINDOW_SIZE {
            return arg(format!("gzip index span {span} is below the {WINDOW_SIZE}-byte window"));
        }
        Ok(GzipIndexer {
            inflater: Inflater::new(GZIP_WINDOW_BITS)?,
            span: span as u64,
            input: Vec::new(),
            taken: 0,
            drained: true,
            total_in: 0,
            total_out: 0,
            ring: vec![0u8; WINDOW_SIZE],
            ring_at: 0,
            last_checkpoint: None,
            between_members: false,
            pending: std::collections::VecDeque::new(),
            tail: Vec::new(),
            tail_from: 0,
            checkpoints: Vec::new(),
            marks: Vec::new(),
        })
    }

    /// Feeds the next compressed piece; `pull_into` then returns its output.
    pub fn push(&mut self, input: &[u8]) -> Result<()> {
        if !self.drained {
            return arg("gzip index: pull the previous input's output (until it is empty) before pushing more");
        }
        self.input.clear();
        self.input.extend_from_slice(input);
        self.tail.extend_from_slice(input);
        self.taken = 0;
        self.drained = input.is_empty();
        Ok(())
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Decodes the next piece of output into `dst`, returning its length (0 once drained).
    pub fn pull_into(&mut self, dst: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < dst.len() && !self.drained {
            if self.between_members {
                self.inflater_restart()?;
            }
            // a mark every MARK_EVERY bytes of output too: a range's stored bytes end near its end, not at the block's
            let room = (dst.len() - filled).min(MARK_EVERY);
            let (r, taken, made) = self.inflater.run(&self.input[self.taken..], &mut dst[filled..filled + room], Z_BLOCK);
            self.taken += taken;
            self.total_in += taken as u64;
            self.remember(&dst[filled..filled + made]);
            filled += made;
            match r {
                Z_OK | Z_BUF_ERROR => self.at_mark(made == room),
                Z_STREAM_END => {
                    self.marks.extend([self.total_in as f64, self.total_out as f64]);
                    self.between_members = true;
                }
                Z_MEM_ERROR => return Err(NativeError::Internal("inflate: out of memory".into())),
                _ => return Err(NativeError::Corrupt(format!("gzip stream at input byte {}: {}", self.total_in, self.inflater.message()))),
            }
            self.resolve_pending(false);
            if self.taken == self.input.len() && (made == 0 || self.between_members) {
                self.drained = true;
            }
        }
        self.trim_tail();
        Ok(filled)
    }

    /// Sparse windows for the pending checkpoints whose probe the output has passed (all of them at
    /// a member's end or when `all`): their only uses are within WINDOW_SIZE + 258 bytes after them.
    fn resolve_pending(&mut self, all: bool) {
        while let Some(cp) = self.pending.front() {
            let made = self.total_out - cp.output;
            if !(all || self.between_members || made >= PROBE as u64) {
                break;
            }
            let mut cp = self.pending.pop_front().expect("a front");
            let start = (cp.input - u64::from(cp.bits > 0) - self.tail_from) as usize;
            if let Some(sparse) = sparse_window(&self.tail[start..], &cp, made.min(PROBE as u64) as usize) {
                cp.window = sparse;
            }
            self.checkpoints.push(cp);
        }
    }

    /// Drops stream bytes no pending checkpoint needs (the last one is kept: a checkpoint may start in it).
    fn trim_tail(&mut self) {
        let keep_from = self.pending.front().map_or(self.total_in.saturating_sub(1), |c| c.input - u64::from(c.bits > 0));
        let drop = (keep_from.saturating_sub(self.tail_from) as usize).min(self.tail.len());
        if drop > 0 {
            self.tail.drain(..drop);
            self.tail_from += drop as u64;
        }
    }

    /// A next gzip member follows one that ended: the same stream goes on.
    fn inflater_restart(&mut self) -> Result<()> {
        if self.taken == self.input.len() {
            self.drained = true;
            return Ok(());
        }
        if unsafe { inflateReset2(&mut *self.inflater.z, GZIP_WINDOW_BITS) } != Z_OK {
            return Err(NativeError::Internal("inflateReset2 failed".into()));
        }
        self.between_members = false;
        Ok(())
    }

    fn remember(&mut self, out: &[u8]) {
        self.total_out += out.len() as u64;
        let tail = &out[out.len().saturating_sub(WINDOW_SIZE)..];
        for &b in tail {
            self.ring[self.ring_at] = b;
            self.ring_at = (self.ring_at + 1) % WINDOW_SIZE;
        }
    }

    /// After an inflate call: a mark when it filled its output (the input taken so far makes all of
    /// it) or stopped at a block boundary; there (not past the last block), a checkpoint when a span
    /// of output has passed since the last.
    fn at_mark(&mut self, filled: bool) {
        let dt = self.inflater.z.data_type;
        let boundary = dt & 128 != 0 && dt & 64 == 0;
        if filled || boundary {
            self.marks.extend([self.total_in as f64, self.total_out as f64]);
        }
        if !boundary {
            return;
        }
        let due = match self.last_checkpoint {
            None => true,
            Some(at) => self.total_out - at >= self.span,
        };
        if !due {
            return;
        }
        let have = (self.total_out as usize).min(WINDOW_SIZE);
        let mut window = Vec::with_capacity(have);
        for i in 0..have {
            window.push(self.ring[(self.ring_at + WINDOW_SIZE - have + i) % WINDOW_SIZE]);
        }
        self.pending.push_back(Checkpoint { input: self.total_in, output: self.total_out, bits: (dt & 7) as u8, window });
        self.last_checkpoint = Some(self.total_out);
    }

    /// The marks recorded since the last call, and the checkpoints whose windows are final.
    pub fn take(&mut self) -> (Vec<f64>, Vec<Checkpoint>) {
        (std::mem::take(&mut self.marks), std::mem::take(&mut self.checkpoints))
    }

    /// Checks that the stream ended at the end of a gzip member; the last checkpoints are then final
    /// (`take` returns them).
    pub fn finish(&mut self) -> Result<()> {
        if !self.drained {
            return arg("gzip index: finished before the last input's output was pulled");
        }
        if !self.between_members {
            return Err(NativeError::Corrupt(format!("gzip stream truncated after {} input bytes (inside a member)", self.total_in)));
        }
        self.resolve_pending(true);
        Ok(())
    }
}

/// Output after a checkpoint that may still reach into its window: a back-reference reaches at most
/// WINDOW_SIZE back and copies at most 258 bytes.
const PROBE: usize = WINDOW_SIZE + 258;

/**
 * The checkpoint's window with the bytes nothing decoded from it uses set to zero (far smaller once
 * compressed: a tenth of a window is typically used), or None when that cannot be told. Which
 * bytes are used: the first `probe` bytes of output are decoded with the window, with it changed in
 * every byte (output that differs came from the window), and with each byte replaced by its
 * position's low and high byte (such output is a copy of the window byte at that position). The
 * result is decoded again and must give the same output.
 */
fn sparse_window(stored: &[u8], cp: &Checkpoint, probe: usize) -> Option<Vec<u8>> {
    let w = &cp.window;
    let decode = |window: &[u8]| -> Option<Vec<u8>> {
        let mut out = vec![0u8; probe];
        extract(stored, cp.bits, window, 0, &mut out).ok().map(|_| out)
    };
    let real = decode(w)?;
    let flipped = decode(&w.iter().map(|b| b ^ 0x55).collect::<Vec<u8>>())?;
    let low = decode(&(0..w.len()).map(|j| j as u8).collect::<Vec<u8>>())?;
    let high = decode(&(0..w.len()).map(|j| (j >> 8) as u8).collect::<Vec<u8>>())?;
    let mut sparse = vec![0u8; w.len()];
    for i in 0..probe {
        if real[i] != flipped[i] {
            let j = (usize::from(high[i]) << 8) | usize::from(low[i]);
            *sparse.get_mut(j)? = w[j];
        }
    }
    (decode(&sparse)? == real).then_some(sparse)
}

/// Raw deflate from a checkpoint: the stored bytes begin with the byte holding the checkpoint's
/// first `bits` bits when it has any. At a member's end the trailer is skipped and the next
/// member's header read, as the indexer read them.
struct FromCheckpoint<'a> {
    inflater: Inflater,
    src: &'a [u8],
    taken: usize,
    /// Still in the checkpoint's member (raw deflate: its trailer is not read by zlib).
    raw: bool,
    ended: bool,
}

impl<'a> FromCheckpoint<'a> {
    fn new(stored: &'a [u8], bits: u8, window: &[u8]) -> Result<FromCheckpoint<'a>> {
        if bits > 7 {
            return arg(format!("checkpoint bits {bits} out of 0..7"));
        }
        if window.len() > WINDOW_SIZE {
            return arg(format!("checkpoint window of {} bytes exceeds {WINDOW_SIZE}", window.len()));
        }
        let mut inflater = Inflater::new(RAW_WINDOW_BITS)?;
        let mut taken = 0;
        if bits > 0 {
            let Some(&first) = stored.first() else {
                return Err(NativeError::Corrupt("no stored bytes at a checkpoint".into()));
            };
            let value = (first >> (8 - bits)) as c_int;
            if unsafe { inflatePrime(&mut *inflater.z, bits as c_int, value) } != Z_OK {
                return Err(NativeError::Internal("inflatePrime failed".into()));
            }
            taken = 1;
        }
        if !window.is_empty() && unsafe { inflateSetDictionary(&mut *inflater.z, window.as_ptr(), window.len() as u32) } != Z_OK {
            return Err(NativeError::Internal("inflateSetDictionary failed".into()));
        }
        Ok(FromCheckpoint { inflater, src: stored, taken, raw: true, ended: false })
    }

    /// Past a member's end (the checkpoint's member's 8-byte trailer too), into the next member.
    fn next_member(&mut self) -> Result<()> {
        if self.raw {
            self.taken += 8;
            self.raw = false;
        }
        if self.taken >= self.src.len() {
            self.ended = true;
            return Ok(());
        }
        if unsafe { inflateReset2(&mut *self.inflater.z, GZIP_WINDOW_BITS) } != Z_OK {
            return Err(NativeError::Internal("inflateReset2 failed".into()));
        }
        Ok(())
    }
}

impl Member for FromCheckpoint<'_> {
    fn step(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        while !self.ended {
            let rest = self.src.get(self.taken..).unwrap_or(&[]);
            let (r, taken, made) = self.inflater.run(rest, out, Z_NO_FLUSH);
            self.taken += taken;
            match r {
                Z_STREAM_END => self.next_member()?,
                Z_OK | Z_BUF_ERROR if made == 0 => return Err(NativeError::Corrupt("gzip stream truncated at the range's end".into())),
                Z_OK | Z_BUF_ERROR => {}
                Z_MEM_ERROR => return Err(NativeError::Internal("inflate: out of memory".into())),
                _ => return Err(NativeError::Corrupt(format!("gzip stream from a checkpoint: {}", self.inflater.message()))),
            }
            if made > 0 {
                return Ok(Some(made));
            }
        }
        Ok(None)
    }
}

/// Decodes from a checkpoint: drops `skip` bytes of output and fills `dst` with the next ones.
pub fn extract(stored: &[u8], bits: u8, window: &[u8], skip: usize, dst: &mut [u8]) -> Result<()> {
    fill(&mut FromCheckpoint::new(stored, bits, window)?, skip, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{compress, Codec};

    /// Text-like data that deflate compresses with back-references across block boundaries.
    fn sample(n: usize) -> Vec<u8> {
        let words = [&b"layer "[..], b"chunk ", b"gzip ", b"window ", b"offset\n", b"checkpoint "];
        let mut out = Vec::with_capacity(n);
        let mut x = 12345u32;
        while out.len() < n {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % words.len()]);
            if x % 7 == 0 {
                out.extend_from_slice(format!("{}", x % 1000).as_bytes());
            }
        }
        out.truncate(n);
        out
    }

    fn index(z: &[u8], span: usize, piece: usize) -> (Vec<u8>, Vec<f64>, Vec<Checkpoint>) {
        let mut ix = GzipIndexer::new(span).unwrap();
        let (mut out, mut marks, mut cps) = (Vec::new(), Vec::new(), Vec::new());
        let mut dst = vec![0u8; OUT_PIECE];
        for p in z.chunks(piece) {
            ix.push(p).unwrap();
            loop {
                let n = ix.pull_into(&mut dst).unwrap();
                if n == 0 { break; }
                out.extend(&dst[..n]);
            }
            let (m, c) = ix.take();
            marks.extend(m);
            cps.extend(c);
        }
        ix.finish().unwrap();
        let (m, c) = ix.take();
        marks.extend(m);
        cps.extend(c);
        (out, marks, cps)
    }

    fn stored_from<'a>(z: &'a [u8], cp: &Checkpoint) -> &'a [u8] {
        &z[cp.input as usize - usize::from(cp.bits > 0)..]
    }

    #[test]
    fn any_range_decodes_from_the_checkpoint_before_it() {
        let data = sample(3 << 20);
        let z = compress(Codec::Gzip, &data, 6).unwrap();
        let (out, marks, cps) = index(&z, 256 << 10, 70_000);
        assert_eq!(out, data);
        assert!(cps.len() >= 8, "{} checkpoints", cps.len());
        assert!(marks.len() / 2 >= cps.len());
        assert!(cps.iter().any(|c| c.bits != 0), "some checkpoint starts mid-byte");
        for cp in &cps {
            let at = cp.output as usize;
            let len = (data.len() - at).min(100_000);
            let mut dst = vec![0u8; len];
            extract(stored_from(&z, cp), cp.bits, &cp.window, 0, &mut dst).unwrap();
            assert_eq!(dst, &data[at..at + len]);
            let mut part = vec![0u8; 5000];
            if at + 12_345 + 5000 <= data.len() {
                extract(stored_from(&z, cp), cp.bits, &cp.window, 12_345, &mut part).unwrap();
                assert_eq!(part, &data[at + 12_345..at + 17_345]);
            }
        }
    }

    #[test]
    fn windows_keep_only_the_bytes_decoding_uses() {
        let data = sample(2 << 20);
        let z = compress(Codec::Gzip, &data, 6).unwrap();
        let (_, _, cps) = index(&z, 128 << 10, 65536);
        let full: Vec<&Checkpoint> = cps.iter().filter(|c| c.window.len() == WINDOW_SIZE).collect();
        assert!(full.len() >= 4);
        for cp in full {
            let used = cp.window.iter().filter(|&&b| b != 0).count();
            assert!(used < WINDOW_SIZE / 2, "{used} window bytes kept");
            let at = cp.output as usize;
            let mut dst = vec![0u8; (data.len() - at).min(200_000)];
            extract(stored_from(&z, cp), cp.bits, &cp.window, 0, &mut dst).unwrap();
            assert_eq!(dst, &data[at..at + dst.len()]);
        }
    }

    #[test]
    fn marks_bound_the_stored_bytes_of_a_range() {
        let data = sample(2 << 20);
        let z = compress(Codec::Gzip, &data, 6).unwrap();
        let (_, marks, cps) = index(&z, 512 << 10, z.len());
        let cp = &cps[1];
        let want_end = cp.output as usize + 300_000;
        // the first boundary at or past the range's end: its input offset is enough stored bytes
        let end_in = marks.chunks(2).find(|m| m[1] as usize >= want_end).unwrap()[0] as usize;
        let mut dst = vec![0u8; 300_000];
        extract(&z[cp.input as usize - usize::from(cp.bits > 0)..end_in], cp.bits, &cp.window, 0, &mut dst).unwrap();
        assert_eq!(dst, &data[cp.output as usize..want_end]);
    }

    #[test]
    fn members_one_after_another_are_one_stream() {
        let (a, b) = (sample(600_000), sample(900_000));
        let mut z = compress(Codec::Gzip, &a, 6).unwrap();
        z.extend(compress(Codec::Gzip, &b, 6).unwrap());
        let (out, _, cps) = index(&z, 100 << 10, 4096);
        assert_eq!(&out[..a.len()], &a[..]);
        assert_eq!(&out[a.len()..], &b[..]);
        // a range across the members' seam decodes from a checkpoint in the first
        let cp = cps.iter().rev().find(|c| (c.output as usize) < a.len() - 1000).unwrap();
        let at = cp.output as usize;
        let mut dst = vec![0u8; a.len() - at + 50_000];
        extract(stored_from(&z, cp), cp.bits, &cp.window, 0, &mut dst).unwrap();
        assert_eq!(dst, &out[at..at + dst.len()]);
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors() {
        let data = sample(500_000);
        let z = compress(Codec::Gzip, &data, 6).unwrap();
        let mut ix = GzipIndexer::new(64 << 10).unwrap();
        ix.push(&z[..z.len() / 2]).unwrap();
        let mut dst = vec![0u8; OUT_PIECE];
        while ix.pull_into(&mut dst).unwrap() > 0 {}
        assert!(matches!(ix.finish(), Err(NativeError::Corrupt(_))));

        let mut ix = GzipIndexer::new(64 << 10).unwrap();
        ix.push(b"\x1f\x8b\x08\x00garbage that is not deflate at all").unwrap();
        assert!(ix.pull_into(&mut dst).is_err());

        let (_, _, cps) = index(&z, 64 << 10, z.len());
        assert!(cps.len() >= 2);
        let cp = &cps[cps.len() - 1];
        let mut out = vec![0u8; 10_000];
        // cut short, or a wrong window: an error or other bytes, never a panic
        assert!(extract(&stored_from(&z, cp)[..100], cp.bits, &cp.window, 0, &mut out).is_err());
        let _ = extract(stored_from(&z, cp), cp.bits, &vec![0u8; WINDOW_SIZE], 0, &mut out);
        assert!(matches!(extract(stored_from(&z, cp), 9, &cp.window, 0, &mut out), Err(NativeError::Argument(_))));
    }

    #[test]
    fn a_bomb_comes_out_in_bounded_pieces() {
        let z = compress(Codec::Gzip, &vec![0u8; 64 << 20], 6).unwrap();
        let mut ix = GzipIndexer::new(4 << 20).unwrap();
        ix.push(&z).unwrap();
        let mut dst = vec![0u8; OUT_PIECE];
        let mut total = 0;
        loop {
            let n = ix.pull_into(&mut dst).unwrap();
            if n == 0 { break; }
            assert!(n <= OUT_PIECE);
            total += n;
        }
        ix.finish().unwrap();
        assert_eq!(total, 64 << 20);
    }
}
