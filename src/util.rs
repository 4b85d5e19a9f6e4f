//! Small helpers shared across layers (no crate imports): background
//! threads, bounded concurrency, RFC 3339 times, URL redaction.
//!
//! Background work of a poll (parsing report files, applying to the store)
//! runs on a thread of its own at a lower scheduling priority, so that on a
//! busy machine the threads serving scrapes win.
//!
//! The thread lowers its own priority (nice +10) and ends with the work, so
//! nothing ever has to raise a priority back: lowering needs no privilege,
//! raising needs CAP_SYS_NICE, which the shipped deployments drop. (A
//! pooled thread lowered and then restored would stay low without it.)
//! std and tokio offer no per-thread priority, hence libc.

use tokio::sync::oneshot;

/// A URL fit for messages and logs: user info (which may be a credential)
/// becomes `<redacted>`, and the query and fragment (tokens, cursors) are
/// dropped. The one URL redaction of the crate.
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            // User info ends at the last `@` before the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
                None => format!("{scheme}://{rest}"),
            }
        }
        None => no_query.to_string(),
    }
}

/// Run `f` on a new low-priority thread; its result, or `None` if it
/// panicked or the thread could not start.
pub async fn spawn_background<T, F>(name: &str, f: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("poll-{name}"))
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a poll thread");
        return None;
    }
    rx.await.ok()
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        *libc::__errno_location() = 0;
        let prev = libc::getpriority(libc::PRIO_PROCESS, tid);
        if *libc::__errno_location() == 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid, (prev + 10).min(19));
        }
    }
}

/// Create `dir` (and its parents) with mode 0700 whatever the umask. An
/// existing directory is left as it is.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Create `path` empty with mode 0600 if it does not exist; make an
/// existing one 0600. The umask cannot widen it.
pub fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    drop(o.open(path)?);
    restrict_if_exists(path);
    Ok(())
}

/// Make an existing file 0600 (best effort: a file of another owner keeps
/// its mode).
pub fn restrict_if_exists(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:tok@h.example/p?q=1#f"),
            "https://<redacted>@h.example/p"
        );
        assert_eq!(redact_url("http://127.0.0.1:1/a"), "http://127.0.0.1:1/a");
        assert_eq!(
            redact_url("https://h.example/a@b?t=1"),
            "https://h.example/a@b"
        );
        assert_eq!(redact_url("not a url?token=x"), "not a url");
    }

    #[tokio::test]
    async fn runs_lowered_and_returns() {
        let nice = super::spawn_background("t", || {
            #[cfg(target_os = "linux")]
            // SAFETY: reads the calling thread's priority.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            }
            #[cfg(not(target_os = "linux"))]
            10
        })
        .await;
        // The process runs at nice 0 in tests; capped at 19.
        assert!(nice.is_some_and(|n| n >= 10), "{nice:?}");
        let none: Option<()> = super::spawn_background("p", || panic!("boom")).await;
        assert!(none.is_none());
    }
}
