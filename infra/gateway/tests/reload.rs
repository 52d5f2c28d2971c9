//! The reloader against a fake workspace: two functions (`alpha`, `beta`) and a `shared` file,
//! built by a shell script that, like cargo, replaces only the binaries whose inputs changed.
//! Every "nothing happened" check ends with a real edit as a sentinel: the build that follows
//! must be the only one and must name only the sentinel's function, so a spurious build shows
//! up without asserting on timings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulso_gateway::reload::{self, ReloadConfig, Reloader};
use tracing::subscriber::DefaultGuard;

/// Logs each build to `builds.log` (outside the watched trees, so it cannot trigger anything),
/// fails with 101 while `fail` exists, and writes `bin/<name>` = shared + the function's source
/// through a rename only when the content differs, as cargo relinks only what changed.
const BUILD: &str = r#"
echo build >> builds.log
[ ! -e fail ] || exit 101
mkdir -p bin
for dir in functions/*/; do
    name=$(basename "$dir")
    cat shared/lib.rs "$dir/src/main.rs" > bin/next
    if cmp -s bin/next "bin/$name"; then rm bin/next; else mv bin/next "bin/$name"; fi
done
"#;

/// Longer than the debounce by far, so an edit's own build (if any) starts before a sentinel.
const QUIET: Duration = Duration::from_millis(1000);

struct Fake {
    root: PathBuf,
    reports: Arc<Mutex<Vec<Vec<String>>>>,
    reloader: Option<Reloader>,
    log: Log,
    _logging: DefaultGuard,
}

/// The reloader's log lines. The tests run on a current-thread runtime, so the reloader's task
/// logs on the test's thread, into this test's own subscriber.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Fake {
    async fn start(test: &str) -> Self {
        Self::start_with(test, ["sh", "-c", BUILD].map(String::from).to_vec()).await
    }

    async fn start_with(test: &str, build: Vec<String>) -> Self {
        let root = std::env::temp_dir().join(format!("pulso-reload-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (file, text) in [
            ("functions/alpha/src/main.rs", "fn main() { alpha }\n"),
            ("functions/beta/src/main.rs", "fn main() { beta }\n"),
            ("shared/lib.rs", "pub fn shared() {}\n"),
            ("shared/extra.rs", "pub fn extra() {}\n"),
            ("Cargo.toml", "[workspace]\n"),
        ] {
            write(&root.join(file), text);
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let mut fake = Self {
            root,
            reports: Arc::default(),
            reloader: None,
            log,
            _logging: tracing::subscriber::set_default(subscriber),
        };
        fake.build_now();
        let reports = Arc::clone(&fake.reports);
        let config = ReloadConfig {
            workspace: fake.root.clone(),
            watched: ["functions", "shared", "migrations", "Cargo.toml"]
                .map(PathBuf::from)
                .to_vec(),
            build,
            binaries: fake.root.join("bin"),
            debounce: Duration::from_millis(100),
        };
        let functions = vec!["alpha".to_owned(), "beta".to_owned()];
        let on_rebuilt = move |names| reports.lock().unwrap().push(names);
        let reloader = reload::spawn(config, functions, on_rebuilt).unwrap();
        reloader.ready().await;
        fake.reloader = Some(reloader);
        fake
    }

    /// The baseline binaries, as the developer's first `cargo build` left them.
    fn build_now(&self) {
        let status = std::process::Command::new("sh")
            .args(["-c", BUILD])
            .current_dir(&self.root)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(self.root.join("builds.log")).unwrap();
    }

    fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    fn builds(&self) -> usize {
        std::fs::read_to_string(self.path("builds.log")).map_or(0, |log| log.lines().count())
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.0.lock().unwrap()).into_owned()
    }

    fn reports(&self) -> Vec<Vec<String>> {
        self.reports.lock().unwrap().clone()
    }

    /// Polls until `done` holds, for up to 10 s.
    async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..200 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {} builds, reports {:?}, log:\n{}",
            self.builds(),
            self.reports(),
            self.log()
        );
    }

    /// Edits `beta` after a quiet spell and waits for its build: it must be the `builds`-th
    /// build and the only report since `reports_before` must be `["beta"]`.
    async fn sentinel(&self, builds: usize, reports_before: usize) {
        tokio::time::sleep(QUIET).await;
        write(
            &self.path("functions/beta/src/main.rs"),
            "fn main() { beta2 }\n",
        );
        let expected = reports_before + 1;
        self.wait_until("the sentinel's report", |f| f.reports().len() >= expected)
            .await;
        let log = self.log();
        assert_eq!(self.builds(), builds, "builds; log:\n{log}");
        let reports = &self.reports()[reports_before..];
        assert_eq!(reports, [vec!["beta".to_owned()]], "log:\n{log}");
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(reloader) = self.reloader.take() {
            reloader.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_content_change_rebuilds_once_and_reports_only_the_changed_binary() {
    let fake = Fake::start("change").await;
    write(
        &fake.path("functions/alpha/src/main.rs"),
        "fn main() { alpha2 }\n",
    );
    fake.wait_until("a report", |f| !f.reports().is_empty())
        .await;
    assert_eq!(fake.reports(), [vec!["alpha".to_owned()]]);
    assert_eq!(fake.builds(), 1);
    let log = fake.log();
    for line in [
        "changed: functions/alpha/src/main.rs",
        "rebuilding…",
        "alpha will restart",
    ] {
        assert!(log.contains(line), "{line:?} not in the log:\n{log}");
    }
    fake.sentinel(2, 1).await;
}

#[tokio::test]
async fn a_shared_change_reports_every_function() {
    let fake = Fake::start("shared").await;
    for file in ["a", "b", "c", "d"] {
        write(
            &fake.path(&format!("shared/{file}.rs")),
            "pub fn new() {}\n",
        );
    }
    write(&fake.path("shared/lib.rs"), "pub fn shared() { 2 }\n");
    fake.wait_until("a report", |f| !f.reports().is_empty())
        .await;
    assert_eq!(
        fake.reports(),
        [vec!["alpha".to_owned(), "beta".to_owned()]]
    );
    let log = fake.log();
    let changed = "changed: shared/a.rs, shared/b.rs, shared/c.rs and 2 more";
    assert!(log.contains(changed), "{log}");
    assert!(log.contains("alpha, beta will restart"), "{log}");
}

#[tokio::test]
async fn touches_and_same_bytes_saves_trigger_nothing() {
    let fake = Fake::start("touch").await;
    let main = fake.path("functions/alpha/src/main.rs");
    let file = std::fs::File::options().append(true).open(&main).unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    // An editor's atomic save of unchanged text: write a temp file, rename it over the source.
    let temp = fake.path("functions/alpha/src/main.rs.saving");
    std::fs::copy(&main, &temp).unwrap();
    std::fs::rename(&temp, &main).unwrap();
    // A source file that came and went between two looks.
    write(&fake.path("functions/alpha/src/scratch.rs"), "x");
    std::fs::remove_file(fake.path("functions/alpha/src/scratch.rs")).unwrap();
    fake.sentinel(1, 0).await;
}

#[tokio::test]
async fn ignored_names_trigger_nothing() {
    let fake = Fake::start("ignored").await;
    for file in [
        ".dev/x",
        "functions/.dev/log",
        "functions/alpha/src/main.rs~",
        "functions/alpha/src/.main.rs.swp",
        "functions/alpha/src/main.rs.swx",
        "shared/sed12.tmp",
        "shared/lib.rs.orig",
        "functions/alpha/target/debug/alpha",
        "builds.txt",
    ] {
        write(&fake.path(file), "noise");
    }
    write(&fake.path("functions/alpha/4913"), "");
    std::fs::remove_file(fake.path("functions/alpha/4913")).unwrap();
    fake.sentinel(1, 0).await;
}

#[tokio::test]
async fn a_burst_of_edits_builds_at_most_twice() {
    let fake = Fake::start("burst").await;
    for n in 0..20 {
        write(
            &fake.path("functions/alpha/src/main.rs"),
            &format!("fn main() {{ {n} }}\n"),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_in = |f: &Fake| f.reports().concat().contains(&"alpha".to_owned());
    fake.wait_until("alpha's report", all_in).await;
    tokio::time::sleep(QUIET).await;
    let builds = fake.builds();
    let log = fake.log();
    assert!(
        (1..=2).contains(&builds),
        "{builds} builds for a burst:\n{log}"
    );
    let binary = std::fs::read_to_string(fake.path("bin/alpha")).unwrap();
    assert!(binary.ends_with("fn main() { 19 }\n"), "{binary}");
    fake.sentinel(builds + 1, fake.reports().len()).await;
}

#[tokio::test]
async fn edits_during_a_build_make_exactly_one_more_build_after_it() {
    // `mkdir` is atomic: a second build starting while one runs would find `running` there.
    let slow =
        format!("mkdir running || echo overlap >> overlaps\nsleep 1\n{BUILD}\nrmdir running");
    let fake = Fake::start_with("coalesce", ["sh", "-c", &slow].map(String::from).to_vec()).await;
    write(
        &fake.path("functions/alpha/src/main.rs"),
        "fn main() { alpha2 }\n",
    );
    fake.wait_until("the first build", |f| f.builds() == 1)
        .await;
    for n in 3..6 {
        write(
            &fake.path("functions/alpha/src/main.rs"),
            &format!("fn main() {{ alpha{n} }}\n"),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write(
        &fake.path("functions/beta/src/main.rs"),
        "fn main() { beta1 }\n",
    );
    let beta = |f: &Fake| f.reports().concat().contains(&"beta".to_owned());
    fake.wait_until("beta's report", beta).await;
    assert_eq!(fake.builds(), 2, "log:\n{}", fake.log());
    assert!(!fake.path("overlaps").exists(), "two builds ran at once");
    fake.sentinel(3, fake.reports().len()).await;
}

#[tokio::test]
async fn a_failed_build_reports_nothing_and_the_next_one_catches_up() {
    let fake = Fake::start("failed").await;
    write(&fake.path("fail"), "");
    write(
        &fake.path("functions/alpha/src/main.rs"),
        "fn main() { broken }\n",
    );
    let failed = |f: &Fake| f.log().contains("build failed");
    fake.wait_until("the failing build", failed).await;
    assert!(fake.log().contains("exit status 101"), "{}", fake.log());
    assert!(fake.reports().is_empty());
    std::fs::remove_file(fake.path("fail")).unwrap();
    write(
        &fake.path("functions/beta/src/main.rs"),
        "fn main() { fixed }\n",
    );
    fake.wait_until("a report", |f| !f.reports().is_empty())
        .await;
    assert_eq!(
        fake.reports(),
        [vec!["alpha".to_owned(), "beta".to_owned()]]
    );
}

#[tokio::test]
async fn a_renamed_or_deleted_source_is_a_change() {
    let fake = Fake::start("deleted").await;
    let (extra, renamed) = (fake.path("shared/extra.rs"), fake.path("shared/renamed.rs"));
    // `extra.rs` is in no binary: the builds run, and no function restarts.
    std::fs::rename(&extra, &renamed).unwrap();
    fake.wait_until("a build", |f| f.builds() == 1).await;
    std::fs::remove_file(&renamed).unwrap();
    fake.wait_until("a second build", |f| f.builds() == 2).await;
    fake.sentinel(3, 0).await;
}

#[tokio::test]
async fn a_build_that_cannot_start_is_logged_and_the_reloader_goes_on() {
    let fake = Fake::start_with("missing", vec!["pulso-no-such-build-tool".to_owned()]).await;
    let failures = |f: &Fake| f.log().matches("cannot start the build").count();
    write(&fake.path("shared/extra.rs"), "pub fn extra() { 2 }\n");
    fake.wait_until("the first failure", |f| failures(f) == 1)
        .await;
    write(&fake.path("shared/extra.rs"), "pub fn extra() { 3 }\n");
    fake.wait_until("the second failure", |f| failures(f) == 2)
        .await;
    assert!(fake.reports().is_empty());
    assert!(
        fake.log().contains("pulso-no-such-build-tool"),
        "{}",
        fake.log()
    );
}

#[test]
fn ignores_scratch_hidden_and_output_names() {
    let ignored = [
        ".dev/x",
        "functions/.git/HEAD",
        "functions/patients/src/.main.rs.swp",
        "functions/patients/src/main.rs~",
        "functions/patients/src/main.rs.swx",
        "shared/src/sedAbc12.tmp",
        "shared/src/lib.rs.orig",
        "functions/patients/4913",
        "functions/patients/target/debug/patients",
        "target/debug/patients",
    ];
    for path in ignored {
        assert!(reload::ignored(Path::new(path)), "{path} should be ignored");
    }
    let sources = [
        "functions/patients/src/main.rs",
        "migrations/20261123000001_tenancy_and_roles.sql",
        "shared/src/cache/mod.rs",
        "Cargo.toml",
        "shared/src/v2.rs",
    ];
    for path in sources {
        assert!(!reload::ignored(Path::new(path)), "{path} is a source");
    }
}

/// How long the first fingerprints of this very workspace take, printed (run with
/// `--nocapture`), never asserted: the machine is shared. The build would be `true`; nothing
/// is edited, so it never runs.
#[tokio::test]
async fn snapshot_of_this_workspace() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = ReloadConfig {
        binaries: workspace.join("target/debug"),
        workspace,
        watched: [
            "functions",
            "shared",
            "migrations",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .map(PathBuf::from)
        .to_vec(),
        build: vec!["true".to_owned()],
        debounce: Duration::from_millis(300),
    };
    let started = std::time::Instant::now();
    let reloader = reload::spawn(config, Vec::new(), |_| {}).unwrap();
    let watching = started.elapsed();
    reloader.ready().await;
    println!(
        "watches set up in {:.1} ms, sources fingerprinted {:.1} ms later",
        watching.as_secs_f64() * 1000.0,
        (started.elapsed() - watching).as_secs_f64() * 1000.0
    );
}
