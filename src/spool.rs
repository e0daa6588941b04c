//! Lists that grow all run long — the per-second windows, the server's
//! samples at every scrape — kept mostly out of memory, so that an hour's
//! soak or a day's run holds its resident memory flat.
//!
//! A [`Spool`] keeps its newest items in memory and, a batch at a time,
//! appends the older ones as JSON lines to a temporary file that is unlinked
//! as soon as it is made (nothing is left behind, even on a kill). At the
//! end [`Spool::into_vec`] reads them back, in order. A short run never
//! touches the disk; when no temporary file can be made or written, the
//! spool keeps everything in memory (what was written stays readable:
//! a failed batch is cut off the file and kept), so nothing is ever lost.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Items kept in memory before a batch is written out.
const BATCH: usize = 256;

/// An append-only list, spilled to a temporary file a batch at a time.
pub struct Spool<T> {
    /// Items after those in the file, in order.
    mem: Vec<T>,
    /// The file (once made), the bytes of whole batches in it, their items.
    file: Option<File>,
    written: u64,
    in_file: usize,
    /// False once making or writing the file failed: memory only from then.
    disk: bool,
    batch: usize,
}

impl<T: Serialize + DeserializeOwned> Default for Spool<T> {
    fn default() -> Self {
        Self::with_batch(BATCH)
    }
}

impl<T: Serialize + DeserializeOwned> Spool<T> {
    /// A spool that writes `batch` items at a time (at least one).
    pub fn with_batch(batch: usize) -> Self {
        Spool {
            mem: Vec::new(),
            file: None,
            written: 0,
            in_file: 0,
            disk: true,
            batch: batch.max(1),
        }
    }

    pub fn push(&mut self, item: T) {
        self.mem.push(item);
        if self.disk && self.mem.len() >= self.batch {
            self.spill();
        }
    }

    pub fn len(&self) -> usize {
        self.in_file + self.mem.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some items live in the file (for tests and notes).
    pub fn on_disk(&self) -> usize {
        self.in_file
    }

    /// Every item pushed, in order. An item that cannot be read back (the
    /// file changed under us) ends the file's part with a warning; the
    /// items still in memory follow.
    pub fn into_vec(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        if let Some(f) = self.file.take() {
            if let Err(e) = read_back(f, self.written, &mut out) {
                eprintln!("warning: a spooled series could not be read back whole: {e}");
            }
        }
        out.append(&mut self.mem);
        out
    }

    /// Write the items in memory to the file as one batch.
    fn spill(&mut self) {
        let mut bytes = Vec::with_capacity(self.mem.len() * 128);
        for item in &self.mem {
            if serde_json::to_writer(&mut bytes, item).is_err() {
                self.disk = false;
                return;
            }
            bytes.push(b'\n');
        }
        if self.file.is_none() {
            match temp_file() {
                Ok(f) => self.file = Some(f),
                Err(_) => {
                    self.disk = false;
                    return;
                }
            }
        }
        let f = self.file.as_mut().expect("made above");
        match f.write_all(&bytes) {
            Ok(()) => {
                self.written += bytes.len() as u64;
                self.in_file += self.mem.len();
                self.mem.clear();
            }
            Err(_) => {
                // Cut off whatever of the batch got in; keep it in memory.
                let _ = f.set_len(self.written);
                let _ = f.seek(SeekFrom::Start(self.written));
                self.disk = false;
            }
        }
    }
}

fn read_back<T: DeserializeOwned>(mut f: File, len: u64, out: &mut Vec<T>) -> Result<(), String> {
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(f.take(len));
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        out.push(serde_json::from_str(line.trim_end()).map_err(|e| e.to_string())?);
    }
}

/// A new file in the temporary directory, readable by its owner only,
/// unlinked at once: it lives as long as its handle.
fn temp_file() -> std::io::Result<File> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    for _ in 0..16 {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            ".periscope-spool-{}-{n}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        match o.open(&path) {
            Ok(f) => {
                let _ = std::fs::remove_file(&path);
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_comes_back_in_order_from_file_and_memory() {
        let mut s: Spool<(u64, f64, Option<String>)> = Spool::with_batch(7);
        let items: Vec<_> = (0..100u64)
            .map(|i| (i, i as f64 / 3.0, (i % 3 == 0).then(|| format!("x{i}"))))
            .collect();
        for i in &items {
            s.push(i.clone());
        }
        assert_eq!(s.len(), 100);
        assert_eq!(s.on_disk(), 98, "14 batches of 7 written");
        assert_eq!(s.into_vec(), items, "floats round-trip exactly");
    }

    #[test]
    fn a_short_list_never_touches_the_disk() {
        let mut s: Spool<u32> = Spool::default();
        for i in 0..(BATCH as u32 - 1) {
            s.push(i);
        }
        assert!(s.file.is_none());
        assert_eq!(s.into_vec().len(), BATCH - 1);
    }

    #[test]
    fn memory_stays_bounded_by_the_batch() {
        let mut s: Spool<[f64; 2]> = Spool::with_batch(16);
        for i in 0..10_000 {
            s.push([i as f64, 1.5]);
            assert!(s.mem.len() < 16);
        }
        let v = s.into_vec();
        assert_eq!(v.len(), 10_000);
        assert_eq!(v[9_999], [9_999.0, 1.5]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn no_file_is_left_in_the_temporary_directory() {
        use std::os::fd::AsRawFd;
        let mut s: Spool<u8> = Spool::with_batch(1);
        s.push(1);
        let fd = s
            .file
            .as_ref()
            .expect("a batch of one is written")
            .as_raw_fd();
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(
            link.to_string_lossy().ends_with(" (deleted)"),
            "unlinked as soon as made: {link:?}"
        );
        assert_eq!(s.into_vec(), vec![1]);
    }

    #[test]
    fn a_failed_write_keeps_the_batch_in_memory() {
        let mut s: Spool<u32> = Spool::with_batch(4);
        for i in 0..8 {
            s.push(i);
        }
        assert_eq!(s.on_disk(), 8);
        // A file that can no longer be written: the next batch stays.
        let path = std::env::temp_dir().join(format!("periscope-ro-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let ro = File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let good = s.file.replace(ro).unwrap();
        for i in 8..12 {
            s.push(i);
        }
        assert!(!s.disk && s.mem.len() == 4);
        s.file = Some(good);
        for i in 12..20 {
            s.push(i);
        }
        assert_eq!(s.into_vec(), (0..20).collect::<Vec<_>>());
    }
}
