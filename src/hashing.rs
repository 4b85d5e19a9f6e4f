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

    /// Load the key from `path`, generating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Invalid {
                    path: path.to_path_buf(),
                })?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Invalid {
                    path: path.to_path_buf(),
                })?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
                write_private(path, &format!("{}\n", hex::encode(key))).map_err(|source| {
                    KeyError::Write {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                Ok(Self::new(key))
            }
            Err(source) => Err(KeyError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
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
