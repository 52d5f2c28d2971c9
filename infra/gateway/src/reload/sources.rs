//! Which files are sources and when one changed: the watched scope, the names that are never
//! sources, and each source's fingerprint (length and hash of its bytes), so that only an edit
//! of the bytes counts, not a touch or an editor's save dance.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::hash::Hasher;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// Where the sources are: the canonical workspace and the watched paths relative to it.
#[derive(Clone)]
pub(super) struct Scope {
    pub(super) workspace: PathBuf,
    pub(super) roots: Vec<PathBuf>,
}

impl Scope {
    /// The workspace-relative path of an event, if it is a source this module looks at.
    pub(super) fn source(&self, path: &Path) -> Option<PathBuf> {
        let relative = normalize(path.strip_prefix(&self.workspace).ok()?);
        let watched = self.roots.iter().any(|root| relative.starts_with(root));
        (watched && !ignored(&relative)).then_some(relative)
    }
}

/// Scratch files of editors and tools, build output and the local stack's own state, none of
/// which is a source: hidden names (`.git`, `.dev`, `.#foo.rs`), `target`, backups (`foo.rs~`,
/// `.orig`), swap and temp files (`.swp`, `.swx`, `.tmp`), and all-digit names (vim's `4913`
/// probe that checks whether it may write in a directory).
pub fn ignored(relative: &Path) -> bool {
    let names: Vec<_> = relative.iter().map(OsStr::to_string_lossy).collect();
    let hidden_or_output = names.iter().any(|n| n.starts_with('.') || n == "target");
    let scratch = names.last().is_some_and(|name| {
        [".swp", ".swx", ".tmp", ".orig", "~"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
            || name.bytes().all(|b| b.is_ascii_digit())
    });
    hidden_or_output || scratch
}

/// Drops `.` components, so `./functions` and `functions` are the same root.
pub(super) fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The sources' fingerprints, by workspace-relative path.
pub(super) struct Sources {
    scope: Scope,
    files: BTreeMap<PathBuf, Fingerprint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    hash: u64,
}

impl Sources {
    pub(super) fn snapshot(scope: Scope) -> Self {
        let started = Instant::now();
        let mut files = BTreeMap::new();
        for root in &scope.roots {
            scan(&scope.workspace, root, &mut files);
        }
        tracing::debug!(
            files = files.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "fingerprinted the sources"
        );
        Self { scope, files }
    }

    /// Looks again at `paths` and everything under them; the files that appeared, changed or
    /// vanished since the last look. A file created and deleted in between was never there.
    pub(super) fn refresh(&mut self, paths: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut changed = BTreeSet::new();
        for path in paths {
            let mut now = BTreeMap::new();
            scan(&self.scope.workspace, path, &mut now);
            // Paths order by component, so everything under `path` follows it in the map.
            let gone: Vec<PathBuf> = (self.files.range(path.clone()..).map(|(file, _)| file))
                .take_while(|file| file.starts_with(path))
                .filter(|file| !now.contains_key(*file))
                .cloned()
                .collect();
            for file in gone {
                self.files.remove(&file);
                changed.insert(file);
            }
            for (file, fingerprint) in now {
                if self.files.insert(file.clone(), fingerprint) != Some(fingerprint) {
                    changed.insert(file);
                }
            }
        }
        changed.into_iter().collect()
    }
}

/// Fingerprints `relative` (a file, or every source file under a directory) into `found`.
fn scan(workspace: &Path, relative: &Path, found: &mut BTreeMap<PathBuf, Fingerprint>) {
    let path = workspace.join(relative);
    // Not `metadata`: following a symlinked directory could loop. A symlinked file is still read.
    let Ok(metadata) = fs::symlink_metadata(&path) else {
        return;
    };
    if metadata.is_dir() {
        let Ok(entries) = fs::read_dir(&path) else {
            return;
        };
        for entry in entries.flatten() {
            let child = relative.join(entry.file_name());
            if !ignored(&child) {
                scan(workspace, &child, found);
            }
        }
    } else if let Some(fingerprint) = fingerprint(&path) {
        found.insert(relative.to_owned(), fingerprint);
    }
}

/// `None` when the file cannot be read (gone already, or a symlink to a directory): as far as
/// a build is concerned it is not there.
fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let bytes = fs::read(path).ok()?;
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    Some(Fingerprint {
        len: bytes.len() as u64,
        hash: hasher.finish(),
    })
}
