//! A function instance as an operating-system process: started with the environment Lambda
//! gives a custom runtime, its output copied line by line into the functions' log with the
//! instance's name in front, its exit reported, and the signals the host sends it.

use std::io::Write;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

/// Where the functions' stdout and stderr go: a file (`--functions-log`) or the gateway's
/// stderr.
#[derive(Clone)]
pub struct FunctionLog(Arc<Mutex<Box<dyn Write + Send>>>);

impl FunctionLog {
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(sink)))
    }

    pub fn stderr() -> Self {
        Self::new(Box::new(std::io::stderr()))
    }

    /// One line, prefixed; a whole line per write so two instances never interleave within one.
    fn line(&self, prefix: &str, line: &str) {
        let mut sink = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(sink, "{prefix} {line}");
        let _ = sink.flush();
    }
}

/// What a process is started with.
pub struct Launch<'a> {
    pub binary: &'a Path,
    /// `<function>#<number>`, in front of every log line.
    pub label: String,
    pub env: Vec<(&'static str, String)>,
    pub log: FunctionLog,
}

/// The host's hold on a running process.
pub struct ProcessHandle {
    pid: Option<u32>,
    kill: Option<oneshot::Sender<()>>,
}

impl ProcessHandle {
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// SIGKILL, as Lambda does to an environment whose invocation timed out. A stopped
    /// (frozen) process dies too.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }

    /// SIGSTOP: the process stays alive but never answers again (the `hang` fault).
    pub fn freeze(&self) -> bool {
        let Some(pid) = self.pid.and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
            return false;
        };
        // SAFETY: kill(2) takes no pointers. The pid is one this host spawned; it can only name
        // another process if it was reaped and reused in the instant before the monitor
        // removed the instance, and this is a dev-only fault.
        unsafe { libc::kill(pid, libc::SIGSTOP) == 0 }
    }
}

/// Starts the process; `on_exit` runs once when it has exited (or could not be waited for).
pub fn spawn(
    launch: Launch<'_>,
    on_exit: impl FnOnce(Result<ExitStatus, std::io::Error>) + Send + 'static,
) -> Result<ProcessHandle, std::io::Error> {
    let mut command = Command::new(launch.binary);
    command
        .envs(launch.env)
        // watch used to set it; with it the runtime warns about a feature Pulso does not use.
        .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // If the gateway goes away, so do its functions.
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id();
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(copy_lines(stdout, launch.label.clone(), launch.log.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(copy_lines(stderr, launch.label, launch.log));
    }
    let (kill, killed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            Ok(()) = killed => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        on_exit(status);
    });
    Ok(ProcessHandle {
        pid,
        kill: Some(kill),
    })
}

async fn copy_lines(stream: impl AsyncRead + Unpin, label: String, log: FunctionLog) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => log.line(&label, &line),
            Ok(None) => break,
            // Not UTF-8, or the pipe broke: say so once rather than losing the rest silently.
            Err(error) => {
                log.line(&label, &format!("[gateway: output unreadable: {error}]"));
                break;
            }
        }
    }
}

/// "exit status 101", "killed by signal 9", as an operator reads them.
pub fn describe(status: &Result<ExitStatus, std::io::Error>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => status.to_string(),
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}
