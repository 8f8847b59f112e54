//! The server's own secrets: the generated access key, the token-signing secret and the
//! resource id. Kept in `<data_dir>/server.json` (owner-only) so that connection strings, issued
//! tokens and identity ids stay valid across restarts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::tempdir::write_private_file_new;

pub const SERVER_FILE: &str = "server.json";

/// The secrets a server runs with.
#[derive(Clone)]
pub struct ServerSecrets {
    /// The access key used when none is configured.
    pub access_key: Vec<u8>,
    pub token_secret: Vec<u8>,
    /// A UUID: the `<resource id>` in `8:acs:<resource id>_<uuid>`.
    pub resource_id: String,
}

// Never print the secrets, not even in debug logs.
impl std::fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecrets")
            .field("resource_id", &self.resource_id)
            .finish_non_exhaustive()
    }
}

/// The file format.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    access_key: String,
    token_secret: String,
    resource_id: String,
}

impl ServerSecrets {
    /// Fresh random secrets.
    pub fn generate() -> Self {
        Self {
            access_key: random_bytes(32),
            token_secret: random_bytes(32),
            resource_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Reads `<data_dir>/server.json`, creating it with fresh secrets on the first run.
    /// `data_dir` must exist.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(SERVER_FILE);
        if path.exists() {
            return Self::load(&path);
        }
        let secrets = Self::generate();
        let file = ServerFile {
            access_key: BASE64.encode(&secrets.access_key),
            token_secret: BASE64.encode(&secrets.token_secret),
            resource_id: secrets.resource_id.clone(),
        };
        let json = serde_json::to_vec_pretty(&file).context("encoding server.json")?;
        match publish_new(&path, &json) {
            Ok(()) => Ok(secrets),
            // Another process starting on the same data dir won the race: use its secrets.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(err) => Err(err).with_context(|| format!("writing {}", path.display())),
        }
    }

    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| {
            format!(
                "{} is damaged; fix it, or remove it to generate new secrets \
                 (connection strings, tokens and identities issued so far then stop working)",
                path.display()
            )
        })
    }

    fn parse(text: &[u8]) -> anyhow::Result<Self> {
        let file: ServerFile = serde_json::from_slice(text)?;
        let access_key = BASE64
            .decode(file.access_key.trim())
            .context("access_key is not base64")?;
        let token_secret = BASE64
            .decode(file.token_secret.trim())
            .context("token_secret is not base64")?;
        if access_key.is_empty() || token_secret.len() < 16 {
            bail!("access_key is empty or token_secret is shorter than 16 bytes");
        }
        let resource_id = uuid::Uuid::parse_str(file.resource_id.trim())
            .context("resource_id is not a UUID")?
            .to_string();
        Ok(Self {
            access_key,
            token_secret,
            resource_id,
        })
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Creates `path` with `contents` atomically: readers never see a half-written file, and if
/// `path` already exists the call fails with `AlreadyExists` and leaves it alone.
fn publish_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let tmp = PathBuf::from(tmp);
    write_private_file_new(&tmp, contents)?;
    // A hard link is an atomic create-if-absent. Filesystems without hard links (FAT) fall back
    // to a rename, which is atomic too but would replace a file made in the meantime.
    let result = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(err),
        Err(_) if !path.exists() => std::fs::rename(&tmp, path),
        Err(err) => Err(err),
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;

    #[test]
    fn created_once_then_reused() {
        let dir = TempDir::new("secrets").unwrap();
        let first = ServerSecrets::load_or_create(dir.path()).unwrap();
        let second = ServerSecrets::load_or_create(dir.path()).unwrap();
        assert_eq!(first.access_key, second.access_key);
        assert_eq!(first.token_secret, second.token_secret);
        assert_eq!(first.resource_id, second.resource_id);
        assert_eq!(first.access_key.len(), 32);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SERVER_FILE)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SERVER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn damaged_file_is_an_error_not_a_silent_reset() {
        let dir = TempDir::new("secrets-bad").unwrap();
        std::fs::write(dir.path().join(SERVER_FILE), b"{not json").unwrap();
        let err = ServerSecrets::load_or_create(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    }
}
