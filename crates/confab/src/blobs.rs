//! The filesystem blob store: uploaded media as files under a directory (`<data_dir>/media`
//! by default), `<root>/<2 hex>/<id>`.
//!
//! A write goes to a temporary file next to its target (`.<name>.tmp-<random>`), is fsynced,
//! renamed over the target and the directory fsynced: a reader (or a restart after a crash)
//! sees the whole file or none. Temporary files a crash left behind are swept when the store
//! opens. File I/O runs on the blocking pool, a chunk at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use confab_core::ports::{BlobError, BlobReader, BlobResult, BlobWriter, Blobs};

/// Chunks a blob is read in.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes a writer gathers before handing them to the blocking pool (uploads arrive in chunks
/// of a few KiB).
const WRITE_BUFFER: usize = 256 * 1024;
/// Marks temporary files (never part of a valid key).
const TEMP_MARK: &str = ".tmp-";

pub struct FsBlobs {
    root: PathBuf,
}

fn io_err(what: &str, path: &Path, err: std::io::Error) -> BlobError {
    BlobError::Unavailable(format!("{what} {}: {err}", path.display()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> BlobResult<T> + Send + 'static,
) -> BlobResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlobError::Unavailable(format!("blob task failed: {e}")))?
}

impl FsBlobs {
    /// Opens (creating it) the store at `root`, removing temporary files left by a crash.
    pub fn open(root: &Path) -> BlobResult<Self> {
        fs::create_dir_all(root).map_err(|e| io_err("creating", root, e))?;
        sweep_temp_files(root);
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`: two segments of ASCII letters, digits, `-` and `_` (what the core
    /// makes); anything else (`..`, absolute paths) is refused.
    fn path(&self, key: &str) -> BlobResult<PathBuf> {
        let segments: Vec<&str> = key.split('/').collect();
        let valid = segments.len() == 2
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(BlobError::InvalidKey);
        }
        Ok(self.root.join(segments[0]).join(segments[1]))
    }
}

/// Removes `*.tmp-*` files one level of directories down (best effort).
fn sweep_temp_files(root: &Path) {
    let Ok(dirs) = fs::read_dir(root) else {
        return;
    };
    for dir in dirs.flatten() {
        let Ok(files) = fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            if file.file_name().to_string_lossy().contains(TEMP_MARK) {
                let _ = fs::remove_file(file.path());
            }
        }
    }
}

/// Fsyncs a directory, so that a rename in it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

struct FsWriter {
    /// `None` only while a write runs on the blocking pool.
    file: Option<File>,
    /// Bytes not yet written to `file`.
    buffer: Vec<u8>,
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> BlobResult<()> {
        self.flush().await?;
        let file = self
            .file
            .take()
            .ok_or_else(|| BlobError::Unavailable("blob writer failed earlier".into()))?;
        let (temp, target) = (self.temp.clone(), self.target.clone());
        blocking(move || {
            file.sync_all().map_err(|e| io_err("syncing", &temp, e))?;
            drop(file);
            fs::rename(&temp, &target).map_err(|e| io_err("renaming", &temp, e))?;
            if let Some(dir) = target.parent() {
                sync_dir(dir).map_err(|e| io_err("syncing", dir, e))?;
            }
            Ok(())
        })
        .await?;
        self.done = true;
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        // Drop removes the temporary file.
    }
}

impl FsWriter {
    /// Writes the buffered bytes to the file, on the blocking pool.
    async fn flush(&mut self) -> BlobResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| BlobError::Unavailable("blob writer failed earlier".into()))?;
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_BUFFER));
        let temp = self.temp.clone();
        let file = blocking(move || {
            file.write_all(&chunk)
                .map_err(|e| io_err("writing", &temp, e))?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.done {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
        }
    }
}

struct FsReader {
    file: Option<File>,
    size: u64,
    path: PathBuf,
}

#[async_trait]
impl BlobReader for FsReader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn next_chunk(&mut self) -> BlobResult<Option<Bytes>> {
        let Some(mut file) = self.file.take() else {
            return Ok(None);
        };
        let path = self.path.clone();
        let (file, chunk) = blocking(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = file
                .read(&mut buf)
                .map_err(|e| io_err("reading", &path, e))?;
            buf.truncate(n);
            Ok((file, buf))
        })
        .await?;
        if chunk.is_empty() {
            return Ok(None);
        }
        self.file = Some(file);
        Ok(Some(Bytes::from(chunk)))
    }
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn put(&self, key: &str, _content_type: &str) -> BlobResult<Box<dyn BlobWriter>> {
        let target = self.path(key)?;
        let Some(dir) = target.parent().map(Path::to_path_buf) else {
            return Err(BlobError::InvalidKey);
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{name}{TEMP_MARK}{}",
            uuid::Uuid::new_v4().simple()
        ));
        let (file, temp) = blocking(move || {
            fs::create_dir_all(&dir).map_err(|e| io_err("creating", &dir, e))?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| io_err("creating", &temp, e))?;
            Ok((file, temp))
        })
        .await?;
        Ok(Box::new(FsWriter {
            file: Some(file),
            buffer: Vec::with_capacity(WRITE_BUFFER),
            temp,
            target,
            done: false,
        }))
    }

    async fn get(&self, key: &str) -> BlobResult<Option<Box<dyn BlobReader>>> {
        let path = self.path(key)?;
        blocking(move || match File::open(&path) {
            Ok(file) => {
                let size = file
                    .metadata()
                    .map_err(|e| io_err("reading", &path, e))?
                    .len();
                Ok(Some(Box::new(FsReader {
                    file: Some(file),
                    size,
                    path,
                }) as Box<dyn BlobReader>))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err("opening", &path, err)),
        })
        .await
    }

    async fn delete(&self, key: &str) -> BlobResult<bool> {
        let path = self.path(key)?;
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(io_err("deleting", &path, err)),
        })
        .await
    }

    async fn exists(&self, key: &str) -> BlobResult<bool> {
        let path = self.path(key)?;
        blocking(move || Ok(path.is_file())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "confab-blobs-test-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    async fn read_all(blobs: &FsBlobs, key: &str) -> Option<Vec<u8>> {
        let mut reader = blobs.get(key).await.expect("get")?;
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.expect("chunk") {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out.len() as u64, reader.size());
        Some(out)
    }

    #[tokio::test]
    async fn write_read_delete() {
        let dir = Dir::new();
        let blobs = FsBlobs::open(&dir.0).expect("open");
        let key = "ab/abcdef0123";
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = blobs.put(key, "image/png").await.expect("put");
        for chunk in data.chunks(70_000) {
            writer.write(chunk).await.expect("write");
        }
        assert!(
            !blobs.exists(key).await.expect("exists"),
            "visible before commit"
        );
        writer.commit().await.expect("commit");
        assert!(blobs.exists(key).await.expect("exists"));
        assert!(dir.0.join("ab").join("abcdef0123").is_file());
        assert_eq!(read_all(&blobs, key).await, Some(data));
        assert!(blobs.delete(key).await.expect("delete"));
        assert!(!blobs.delete(key).await.expect("delete again"));
        assert_eq!(read_all(&blobs, key).await, None);
    }

    #[tokio::test]
    async fn an_unfinished_write_leaves_nothing() {
        let dir = Dir::new();
        let blobs = FsBlobs::open(&dir.0).expect("open");
        // An old version stays whole while a new one is half written, and after an abort.
        let mut writer = blobs.put("cd/one", "text/plain").await.expect("put");
        writer.write(b"old").await.expect("write");
        writer.commit().await.expect("commit");
        let mut writer = blobs.put("cd/one", "text/plain").await.expect("put");
        writer.write(b"new, half").await.expect("write");
        assert_eq!(read_all(&blobs, "cd/one").await, Some(b"old".to_vec()));
        writer.abort().await;
        assert_eq!(read_all(&blobs, "cd/one").await, Some(b"old".to_vec()));
        // A dropped writer (a failed request) removes its temporary file.
        let mut writer = blobs.put("cd/two", "text/plain").await.expect("put");
        writer.write(b"partial").await.expect("write");
        drop(writer);
        let names: Vec<String> = fs::read_dir(dir.0.join("cd"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["one".to_owned()]);
    }

    #[tokio::test]
    async fn temporary_files_of_a_crash_are_swept_and_never_read() {
        let dir = Dir::new();
        fs::create_dir_all(dir.0.join("ef")).expect("mkdir");
        // What a crash between write and rename leaves.
        let stale = dir.0.join("ef").join(".three.tmp-0000");
        fs::write(&stale, b"torn").expect("write");
        let blobs = FsBlobs::open(&dir.0).expect("open");
        assert!(!stale.exists());
        assert!(!blobs.exists("ef/three").await.expect("exists"));
        assert_eq!(read_all(&blobs, "ef/three").await, None);
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = Dir::new();
        let blobs = FsBlobs::open(&dir.0).expect("open");
        for key in [
            "../x",
            "ab/..",
            "/etc/passwd",
            "ab/c/d",
            "ab",
            "ab/.x",
            "ab/",
        ] {
            assert_eq!(
                blobs.exists(key).await.err(),
                Some(BlobError::InvalidKey),
                "{key}"
            );
        }
    }
}
