//! The keyed hash that identifies a secret without keeping it: HMAC-SHA256
//! under a key generated on first start and kept beside the store.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the hash key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the hash key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hash key file {path} is invalid: expected 64 hex characters (32 random bytes), e.g. from `openssl rand -hex 32`")]
    Invalid { path: PathBuf },
}

/// HMAC-SHA256 keyed hasher for secret values.
pub struct SecretHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(<key redacted>)")
    }
}

impl SecretHasher {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Keyed hash of a secret value. The value is not kept.
    pub fn hash(&self, secret: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(secret);
        mac.finalize().into_bytes().into()
    }

    /// A non-secret fingerprint of the key itself, stored in the store so
    /// that starting with a different key is detected instead of silently
    /// splitting every exposure in two.
    pub fn key_id(&self) -> String {
        hex::encode(&self.hash(b"nhi-exporter key id v1")[..8])
    }

    /// Load the key from `path`; `None` when there is none yet (absent, or
    /// an empty file left by an earlier failed write). A key readable by
    /// other users is used, with a warning (a mounted Kubernetes Secret is
    /// often 0644 in a private pod).
    pub fn load(path: &Path) -> Result<Option<Self>, KeyError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = fs::metadata(path) {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                        "the hash key file is readable by other users: chmod 600 it (whoever reads it can test guesses of leaked secrets against the store)");
                }
            }
        }
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Invalid {
            path: path.to_path_buf(),
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Invalid {
            path: path.to_path_buf(),
        })?;
        Ok(Some(Self::new(key)))
    }

    /// A new random key, in memory only until [`Self::write_new`].
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
        Self::new(key)
    }

    /// Write this key to `path` atomically (a 0600 temporary file in the
    /// same directory, fsync, rename, fsync of the directory): a failed
    /// write (disk full) leaves no partial key behind.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        write_private(path, &format!("{}\n", hex::encode(self.key))).map_err(|source| {
            KeyError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Load the key from `path`, generating and writing it if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match Self::load(path)? {
            Some(k) => Ok(k),
            None => {
                let k = Self::generate();
                k.write_new(path)?;
                Ok(k)
            }
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::util::create_private_dir(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = SecretHasher::load_or_create(&p).unwrap();
        let b = SecretHasher::load_or_create(&p).unwrap();
        assert_eq!(a.hash(b"x"), b.hash(b"x"));
        assert_ne!(a.hash(b"x"), a.hash(b"y"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let other = SecretHasher::new([7; 32]);
        assert_ne!(other.key_id(), a.key_id());
    }

    #[test]
    fn invalid_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, "not hex").unwrap();
        let e = SecretHasher::load_or_create(&p).unwrap_err();
        assert!(e.to_string().contains("64 hex characters"), "{e}");
    }
}
