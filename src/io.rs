//! Safe file output: write to a temporary file beside the target, then rename on commit.
//!
//! Invariant: the target path either keeps its old content or gets the complete new content;
//! a run that fails or panics before [`AtomicFile::commit`] leaves no partial file behind.
//! A killed process cannot clean up its temporary file; the next write to the same target
//! removes the temporaries of writers that no longer run (see `remove_stale_temps`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written that appears at its target path only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates `.<name>.tmp-<pid>-<n>` in the target's directory.
    pub fn create(target: &Path) -> io::Result<Self> {
        let (temp, file) = create_unique_beside(target, |path| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
        })?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes, fsyncs and renames the temporary file onto the target.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("atomic file already finished"))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, &self.target)?;
        sync_parent(&self.target);
        Ok(())
    }
}

/// Runs `make` on `.<name>.tmp-<pid>-<n>` beside `target` for n = 0, 1, ... until it does not
/// fail with `AlreadyExists` (so concurrent writers never share a temporary name), after
/// removing what killed writers of the same target left there.
fn create_unique_beside<T>(
    target: &Path,
    make: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<(PathBuf, T)> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no file name"))?
        .to_string_lossy()
        .into_owned();
    remove_stale_temps(&dir, &name);
    for attempt in 0..1000u32 {
        let temp = dir.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        match make(&temp) {
            Ok(made) => return Ok((temp, made)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a unique temporary name",
    ))
}

/// Best effort: removes `.<name>.tmp-<pid>-<n>` files and directories in `dir` whose writer
/// `pid` is not a running process (Linux: no `/proc/<pid>`). Without `/proc` nothing is
/// removed, and a live writer's temporary (including one whose pid was reused) is kept.
fn remove_stale_temps(dir: &Path, name: &str) {
    let proc_fs = Path::new("/proc/self");
    if !proc_fs.exists() {
        return;
    }
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, attempt)) = rest.split_once('-') else {
            continue;
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(pid) || !all_digits(attempt) || pid == std::process::id().to_string() {
            continue;
        }
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
    }
}

/// Best effort: make a rename into `target`'s directory durable.
fn sync_parent(target: &Path) {
    if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// A directory built under a temporary name beside its target and renamed into place by
/// [`AtomicDir::commit`] (every file in it fsynced first). Dropped without a commit, it is
/// removed with its contents, so a failed run leaves no half-written directory.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// Creates `.<name>.tmp-<pid>-<n>` beside `target`.
    pub fn create(target: &Path) -> io::Result<Self> {
        let (temp, ()) = create_unique_beside(target, |path| fs::create_dir(path))?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            committed: false,
        })
    }

    /// The temporary directory to write into.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs every file in the directory and renames it onto the target.
    pub fn commit(mut self) -> io::Result<()> {
        for entry in fs::read_dir(&self.temp)? {
            let path = entry?.path();
            if path.is_file() {
                File::open(&path)?.sync_all()?;
            }
        }
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_parent(&self.target);
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.temp);
        }
    }
}

/// A writer that counts the bytes it passes on to `inner` (for checking that a producer wrote
/// exactly the length it promised).
#[derive(Debug)]
pub struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    count: u64,
}

impl<'a, W: Write> CountingWriter<'a, W> {
    /// Wraps `inner` with a count of zero.
    pub fn new(inner: &'a mut W) -> Self {
        Self { inner, count: 0 }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.out.as_mut() {
            Some(o) => o.write(buf),
            None => Err(io::Error::other("atomic file already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// True when `a` and `b` name the same existing file (same device and inode on Unix; same
/// canonical path elsewhere). A missing path is never the same as anything. Callers use it to
/// refuse writing over one of their inputs.
pub fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (&ma, &mb);
        Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        Ok(fs::canonicalize(a)? == fs::canonicalize(b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_removes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"abc").unwrap();
        let temp = f.temp_path().to_path_buf();
        assert!(temp.exists() && !target.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"abc");
        assert!(!temp.exists());

        let mut g = AtomicFile::create(&target).unwrap();
        g.write_all(b"partial").unwrap();
        let temp = g.temp_path().to_path_buf();
        drop(g);
        assert!(!temp.exists());
        assert_eq!(fs::read(&target).unwrap(), b"abc");
    }

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        // pid 0 is never a process's own; /proc/0 does not exist: a dead writer.
        let dead_file = dir.path().join(".out.gguf.tmp-0-0");
        let dead_dir = dir.path().join(".out.gguf.tmp-0-1");
        let live = dir
            .path()
            .join(format!(".out.gguf.tmp-{}-7", std::process::id()));
        let other_target = dir.path().join(".other.gguf.tmp-0-0");
        let not_ours = dir.path().join(".out.gguf.tmp-x-0");
        for f in [&dead_file, &live, &other_target, &not_ours] {
            fs::write(f, b"partial").unwrap();
        }
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("model.safetensors"), b"partial").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!dead_file.exists() && !dead_dir.exists());
        }
        assert!(live.exists() && other_target.exists() && not_ours.exists());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn same_file_detects_links_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"x").unwrap();
        let b = dir.path().join("b");
        fs::hard_link(&a, &b).unwrap();
        let c = dir.path().join("c");
        fs::write(&c, b"x").unwrap();
        assert!(same_file(&a, &b).unwrap());
        assert!(same_file(&a, &dir.path().join(".").join("a")).unwrap());
        assert!(!same_file(&a, &c).unwrap());
        assert!(!same_file(&a, &dir.path().join("missing")).unwrap());
    }

    #[test]
    fn atomic_dir_commits_whole_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt");
        let d = AtomicDir::create(&target).unwrap();
        fs::write(d.path().join("a.json"), b"{}").unwrap();
        let temp = d.path().to_path_buf();
        drop(d);
        assert!(!temp.exists() && !target.exists());
        let d = AtomicDir::create(&target).unwrap();
        fs::write(d.path().join("a.json"), b"{}").unwrap();
        d.commit().unwrap();
        assert_eq!(fs::read(target.join("a.json")).unwrap(), b"{}");
    }

    #[test]
    fn counting_writer_counts() {
        let mut sink = Vec::new();
        let mut w = CountingWriter::new(&mut sink);
        w.write_all(b"hello").unwrap();
        assert_eq!(w.count(), 5);
    }
}
