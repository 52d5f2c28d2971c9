//! Rebuilds the functions after a source edit and names the ones whose binary changed, so the
//! process host (`crate::runtime`) restarts only those: the part of `cargo lambda watch` the
//! gateway still needs now that it runs the functions' processes itself.
//!
//! What watch got wrong, and what this module does instead:
//! - Watch restarted on any file event, so a touch, an editor's save dance or a log file landing
//!   in a watched tree meant a rebuild (and a log line, and another event: a loop). Here an event
//!   is only a hint to look again: every source file has a fingerprint (length and hash of its
//!   bytes), and only a fingerprint that appears, changes or vanishes counts as an edit. Names
//!   that editors and tools use for scratch files (see [`ignored`]) are not looked at at all.
//! - Edits come in bursts (save-all, `git checkout`, a formatter), so a batch ends only when the
//!   tree has been quiet for `debounce`; then one build runs. Edits during a build make exactly
//!   one more build after it, never two builds at once (they would fight over `target/`).
//! - Watch restarted every function. Cargo relinks only the binaries whose code changed, so the
//!   binaries' identity (mtime, length, inode) before and after the build says who restarts:
//!   an edit in `functions/patients` restarts `patients`, an edit in `shared/` restarts all.
//!
//! The build inherits the gateway's stdout and stderr: the compiler's errors reach the developer
//! as cargo prints them. A build that changes `Cargo.lock` triggers one more, cheap, build (the
//! lock is a source too); that one changes nothing, so it does not loop.

mod sources;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use self::sources::ignored;
use self::sources::{Scope, Sources, normalize};

/// A batch also ends this many `debounce` periods after its first event, so a tool that rewrites
/// a file every few hundred milliseconds cannot postpone the build forever.
const LONGEST_BATCH: u32 = 10;

/// How many changed files the log names before "and N more".
const NAMED_FILES: usize = 3;

pub struct ReloadConfig {
    /// The workspace root (where Cargo.toml is); the build runs there.
    pub workspace: PathBuf,
    /// Paths relative to `workspace`, watched recursively: `functions`, `shared`, `Cargo.toml`.
    pub watched: Vec<PathBuf>,
    /// The build command's argv, e.g. `["cargo", "build", "--workspace", "--bins"]`.
    pub build: Vec<String>,
    /// Where the build puts the binaries, e.g. `<workspace>/target/debug`.
    pub binaries: PathBuf,
    /// How long the sources must be quiet before a build starts.
    pub debounce: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the build command is empty")]
    EmptyBuild,
    #[error("the reloader must be started from inside a tokio runtime")]
    NoRuntime,
    #[error("cannot open the workspace {path}")]
    Workspace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {path} for changes")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running reloader. Dropping it (or [`Reloader::stop`]) stops watching and kills a build in
/// progress: the gateway is going away and nobody would restart the functions.
pub struct Reloader {
    task: JoinHandle<()>,
    ready: watch::Receiver<bool>,
    /// Held only to be dropped with the reloader: that ends the watcher's thread.
    _watcher: RecommendedWatcher,
}

impl Reloader {
    /// Resolves once the sources' first fingerprints are taken: an edit before that is part of
    /// the baseline, not a change (tests wait for this before they edit).
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// The same as dropping it, for a call site that should say so.
    pub fn stop(self) {}
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the sources; after a change, builds; after a successful build, calls `on_rebuilt`
/// with the names (from `functions`) whose binary changed. `on_rebuilt` runs on the runtime and
/// must return quickly.
///
/// Setting up the inotify watches happens here, before returning (a few milliseconds for
/// Pulso's trees), so that a tree that cannot be watched is an error at start-up; the
/// fingerprints are taken on a blocking thread afterwards (see [`Reloader::ready`]).
pub fn spawn(
    config: ReloadConfig,
    functions: Vec<String>,
    on_rebuilt: impl Fn(Vec<String>) + Send + Sync + 'static,
) -> Result<Reloader, ReloadError> {
    let Some((program, args)) = config.build.split_first() else {
        return Err(ReloadError::EmptyBuild);
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReloadError::NoRuntime)?;
    let workspace =
        fs::canonicalize(&config.workspace).map_err(|source| ReloadError::Workspace {
            path: config.workspace.clone(),
            source,
        })?;
    let scope = Scope {
        workspace,
        roots: config.watched.iter().map(|root| normalize(root)).collect(),
    };
    let (events, received) = mpsc::unbounded_channel();
    let watcher = watch_sources(&scope, events)?;
    let (ready_sender, ready) = watch::channel(false);
    let job = Job {
        program: program.clone(),
        args: args.to_vec(),
        binaries: config.binaries,
        functions,
        debounce: config.debounce,
    };
    let task = runtime.spawn(run(scope, job, received, ready_sender, on_rebuilt));
    Ok(Reloader {
        task,
        ready,
        _watcher: watcher,
    })
}

/// What to do after a change.
struct Job {
    program: String,
    args: Vec<String>,
    binaries: PathBuf,
    functions: Vec<String>,
    debounce: Duration,
}

/// Directories are watched recursively; a file (`Cargo.toml`) through its directory, because an
/// editor's atomic save replaces the file's inode and a watch on the old one would go deaf.
fn watch_sources(
    scope: &Scope,
    events: mpsc::UnboundedSender<Vec<PathBuf>>,
) -> Result<RecommendedWatcher, ReloadError> {
    let everything: Vec<PathBuf> = scope
        .roots
        .iter()
        .map(|r| scope.workspace.join(r))
        .collect();
    let handler = move |event: notify::Result<notify::Event>| match event {
        // The kernel's queue overflowed: events were lost, so look at everything again.
        Ok(event) if event.need_rescan() => {
            let _ = events.send(everything.clone());
        }
        // Opens and reads change nothing; our own hashing would otherwise feed itself events.
        Ok(event) if is_read(&event.kind) => {}
        Ok(event) => {
            let _ = events.send(event.paths);
        }
        Err(error) => tracing::warn!(%error, "file watcher error; edits may go unnoticed"),
    };
    let watch_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReloadError::Watch { path, source }
    };
    let mut watcher =
        notify::recommended_watcher(handler).map_err(watch_error(&scope.workspace))?;
    let mut directories = BTreeSet::new();
    for root in &scope.roots {
        let path = scope.workspace.join(root);
        if path.is_dir() {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .map_err(watch_error(&path))?;
        } else if let Some(parent) = path
            .parent()
            .filter(|p| directories.insert(p.to_path_buf()))
        {
            watcher
                .watch(parent, RecursiveMode::NonRecursive)
                .map_err(watch_error(parent))?;
        }
    }
    Ok(watcher)
}

fn is_read(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

async fn run(
    scope: Scope,
    job: Job,
    mut events: mpsc::UnboundedReceiver<Vec<PathBuf>>,
    ready: watch::Sender<bool>,
    on_rebuilt: impl Fn(Vec<String>) + Send + Sync + 'static,
) {
    let snapshot_scope = scope.clone();
    let Some(mut sources) = blocking(move || Sources::snapshot(snapshot_scope)).await else {
        return;
    };
    let _ = ready.send(true);
    while let Some(paths) = next_batch(&scope, &mut events, job.debounce).await {
        let Some((back, changed)) = blocking(move || {
            let changed = sources.refresh(&paths);
            (sources, changed)
        })
        .await
        else {
            return;
        };
        sources = back;
        if !changed.is_empty() {
            tracing::info!("changed: {}", name_some(&changed));
            rebuild(&scope.workspace, &job, &on_rebuilt).await;
        }
    }
}

/// Waits for a source event, then gathers events until the sources are quiet for `debounce`.
/// `None` when the watcher is gone.
async fn next_batch(
    scope: &Scope,
    events: &mut mpsc::UnboundedReceiver<Vec<PathBuf>>,
    debounce: Duration,
) -> Option<BTreeSet<PathBuf>> {
    let mut batch = BTreeSet::new();
    while batch.is_empty() {
        batch.extend(events.recv().await?.iter().filter_map(|p| scope.source(p)));
    }
    let last_call = tokio::time::Instant::now() + debounce * LONGEST_BATCH;
    let mut quiet_until = tokio::time::Instant::now() + debounce;
    loop {
        match tokio::time::timeout_at(quiet_until.min(last_call), events.recv()).await {
            Ok(Some(paths)) => {
                let sources: Vec<PathBuf> = paths.iter().filter_map(|p| scope.source(p)).collect();
                // Only a source event restarts the wait: ignored files do not postpone builds.
                if !sources.is_empty() {
                    quiet_until = tokio::time::Instant::now() + debounce;
                }
                batch.extend(sources);
            }
            Ok(None) | Err(_) => return Some(batch),
        }
    }
}

/// Runs the build and reports the functions whose binary it replaced.
async fn rebuild(workspace: &Path, job: &Job, on_rebuilt: &(impl Fn(Vec<String>) + Sync)) {
    let Some(before) = identities(job).await else {
        return;
    };
    tracing::info!("rebuilding…");
    let started = Instant::now();
    let status = tokio::process::Command::new(&job.program)
        .args(&job.args)
        .current_dir(workspace)
        // The terminal's input belongs to the gateway, not to whatever the build runs.
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    let took = seconds(started.elapsed());
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            tracing::error!(
                "cannot start the build `{} {}`: {error}; \
                 functions keep running the previous build",
                job.program,
                job.args.join(" ")
            );
            return;
        }
    };
    if !status.success() {
        tracing::info!(
            "build failed in {took} ({}; the compiler's message is above); \
             functions keep running the previous build",
            describe(status)
        );
        return;
    }
    let Some(after) = identities(job).await else {
        return;
    };
    let rebuilt: Vec<String> = (job.functions.iter().zip(before.iter().zip(&after)))
        .filter(|(_, (before, after))| after.is_some() && before != after)
        .map(|(function, _)| function.clone())
        .collect();
    if rebuilt.is_empty() {
        tracing::info!("rebuilt in {took}: no function's binary changed");
    } else {
        tracing::info!("rebuilt in {took}: {} will restart", rebuilt.join(", "));
        on_rebuilt(rebuilt);
    }
}

/// Which file a binary is: cargo replaces a relinked binary (new inode, mtime, usually length)
/// and leaves an unchanged one alone.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    modified: Option<SystemTime>,
    len: u64,
    device: u64,
    inode: u64,
}

/// Each function's binary, in `job.functions` order; `None` for a missing binary.
async fn identities(job: &Job) -> Option<Vec<Option<Identity>>> {
    let paths: Vec<PathBuf> = job.functions.iter().map(|f| job.binaries.join(f)).collect();
    blocking(move || {
        paths
            .iter()
            .map(|path| {
                let metadata = fs::metadata(path).ok()?;
                Some(Identity {
                    modified: metadata.modified().ok(),
                    len: metadata.len(),
                    device: metadata.dev(),
                    inode: metadata.ino(),
                })
            })
            .collect()
    })
    .await
}

/// File-system work off the runtime's threads. `None` only if the work panicked or the runtime
/// is shutting down; the reloader then stops, saying so.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => Some(done),
        Err(error) => {
            tracing::error!(%error, "the source watcher stopped; edits will not rebuild");
            None
        }
    }
}

/// "functions/a.rs, shared/b.rs, shared/c.rs and 2 more"
fn name_some(files: &[PathBuf]) -> String {
    let named: Vec<String> = (files.iter().take(NAMED_FILES))
        .map(|file| file.display().to_string())
        .collect();
    match files.len().saturating_sub(NAMED_FILES) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}
