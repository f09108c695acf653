//! Everything the configuration reads from the filesystem: the `--config` file, and the files
//! its settings name, with the permission checks of those that hold secrets.
//!
//! All of it is read before validation ([`Files::read`]), so that validation is a pure function
//! of the settings and these contents, and a reload is the same reading done again.

use std::path::Path;
use std::sync::Arc;

use super::settings::{parse_file, FileConfig, Resolved};
use super::{invalid, ConfigError, FileUse, Files};
use crate::credentials::Credential;

/// The `--config` file's text. A file that holds secrets (credentials, a client's inline
/// secret, proxy passwords) is refused when others may read it, as a credentials file is; one
/// that only names secret files (a Kubernetes ConfigMap) may be world-readable.
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let text = read_text(path)?;
    // A file that does not parse is reported by `resolve`, with the parser's message.
    if parse_file(&text).is_ok_and(|f| holds_secrets(&f)) {
        refuse_if_readable_by_others(path)?;
    }
    Ok(text)
}

fn holds_secrets(f: &FileConfig) -> bool {
    f.credentials.as_ref().is_some_and(|c| !c.is_empty())
        || f.upstream_credentials.is_some()
        || f.client.iter().flatten().any(|c| c.secret_access_key.is_some())
        || f.route.iter().flatten().any(|r| r.upstream_credentials.is_some())
        || f.forward.as_ref().and_then(|fw| fw.user.as_ref()).is_some_and(|u| !u.is_empty())
        || f.sts.as_ref().is_some_and(|s| s.session_key.is_some())
}

impl Files {
    /// Reads every file `r` names. Never fails: what could not be read is kept as its error.
    pub fn read(r: &Resolved) -> Files {
        let mut files = Files::default();
        for (path, how) in named_files(r) {
            files.contents.entry((path.to_owned(), how)).or_insert_with(|| read(path, how));
        }
        files
    }
}

/// The files the settings name, with how each is used.
fn named_files(r: &Resolved) -> Vec<(&Path, FileUse)> {
    let mut out = Vec::new();
    out.extend(r.upstream_ca.as_deref().map(|p| (p, FileUse::Present)));
    out.extend(r.credentials_file.as_deref().map(|p| (p, FileUse::Secret)));
    for client in &r.clients {
        out.extend(client.secret_file.as_deref().map(|p| (p, FileUse::Secret)));
        out.extend(client.policy_file.as_deref().map(|p| (p, FileUse::Text)));
    }
    out.extend(r.routes.iter().filter_map(|route| route.upstream_ca.as_deref()).map(|p| (p, FileUse::Present)));
    out.extend(r.forward.users_file.as_deref().map(|p| (p, FileUse::Secret)));
    out.extend(super::sts::named_files(&r.sts, &r.oidc_providers, &r.roles));
    out
}

fn read(path: &Path, how: FileUse) -> Result<String, ConfigError> {
    match how {
        FileUse::Secret => {
            refuse_if_readable_by_others(path)?;
            read_text(path)
        }
        FileUse::Text => read_text(path),
        FileUse::Present => std::fs::metadata(path).map(|_| String::new()).map_err(|e| read_error(path, e)),
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| read_error(path, e))
}

fn read_error(path: &Path, source: std::io::Error) -> ConfigError {
    ConfigError::Read { path: path.to_owned(), source: Arc::new(source) }
}

/// One `AKID:SECRET` per line; blank lines and `#` comments are skipped. Errors name the line.
pub(super) fn parse_credentials(path: &Path, text: &str) -> Result<Vec<Credential>, ConfigError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            Credential::parse(line)
                .ok_or_else(|| invalid(format!("{}:{}: expected AKID:SECRET", path.display(), n + 1)))?,
        );
    }
    Ok(out)
}

/// A file that others (not owner, not group) may read is refused: it holds secrets. Group read
/// stays allowed so a Kubernetes secret mounted 0440 with an fsGroup works.
#[cfg(unix)]
fn refuse_if_readable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, e))?;
    let mode = meta.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(invalid(format!(
            "{} holds secrets but is readable by others (mode {:o}); chmod 600 (or 640) it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_readable_by_others(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}
