//! A private temporary directory removed on drop: holds the self-signed certificate of an
//! in-memory server (clients need a file to trust) and the files of unit tests.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;

#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<system temp>/confab-<label>-<random>`, readable by the owner only.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let base = std::env::temp_dir();
        // A few tries in case of a name clash; 64 random bits make even one unlikely.
        let mut last_err = None;
        for _ in 0..8 {
            let suffix: u64 = rand::thread_rng().gen();
            let path = base.join(format!("confab-{label}-{suffix:016x}"));
            match create_private_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(err),
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("creating temporary directory {}", path.display())
                    })
                }
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("name clash")))
            .with_context(|| format!("creating a temporary directory in {}", base.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is not worth a panic or an error at shutdown.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Creates one directory (not its parents) that only the owner may enter.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Creates a directory and its missing parents; the ones created are owner-only (the data dir
/// holds the access key and every message).
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Writes a new file that only the owner may read: fails if it exists.
pub fn write_private_file_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_file_new(path, contents, 0o600)
}

/// Writes a new file with the given unix permission bits: fails if it exists.
fn write_file_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes `contents` to `path` as a whole, with the given unix permission bits: to a sibling
/// temporary file first, then renamed over `path`, so a crash never leaves a half-written file.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let suffix: u64 = rand::thread_rng().gen();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{suffix:016x}"));
    let tmp = PathBuf::from(tmp);
    write_file_new(&tmp, contents, mode)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop() {
        let dir = TempDir::new("tempdir-test").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("f"), b"x").unwrap();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }
}
