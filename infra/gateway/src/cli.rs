//! Command-line flags and environment variables of `pulso-gateway`, parsed by hand to keep the
//! dev tool's dependency tree small.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

pub const USAGE: &str = "\
Usage: pulso-gateway [OPTIONS]

Stands in for API Gateway and Lambda locally: reads the SAM template, runs each function's
binary as Lambda runs a custom runtime (Runtime API, timeouts, restarts), routes HTTP API
requests to them, serves the WebSocket API and its @connections API, and ticks the functions'
schedules like EventBridge.

Options:
  --template <PATH>               SAM template to read               [default: template.yaml]
  --listen <ADDR>                 HTTP API address                   [default: 127.0.0.1:4400]
                                  (env PULSO_GATEWAY_LISTEN)
  --ws-listen <ADDR>              WebSocket API and @connections     [default: 127.0.0.1:4401]
                                  address, used when the template declares a WebSocket API
                                  (env PULSO_GATEWAY_WS_LISTEN)
  --functions-dir <PATH>          where the functions' binaries are  [default: target/debug]
                                  (env PULSO_FUNCTIONS_DIR)
  --functions-log <PATH>          append the functions' output here  [default: stderr]
  --runtime-listen <ADDR>         the Runtime API the functions call [default: 127.0.0.1:0]
  --max-instances <N>             instances per function, unless the [default: 4]
                                  template reserves concurrency
  --idle-reap-secs <N>            stop extra instances idle this long [default: 600]
  --invoke-url <URL>              do not run the functions: send every invocation to this
                                  Invoke API instead (sam local start-lambda, cargo lambda
                                  watch, or a test's functions)  (env PULSO_INVOKE_URL)
  --rebuild                       watch functions/, shared/, migrations/ and the Cargo files;
                                  after an edit run `cargo build --workspace --bins` and restart
                                  the functions whose binary changed
  --timeout-secs <N>              integration timeout in seconds     [default: 30]
  --ws-idle-timeout-secs <N>      close idle WebSocket connections   [default: 600]
  --ws-max-connection-secs <N>    close WebSocket connections older  [default: 7200]
  --schedules <on|off>            tick scheduled functions by        [default: on]
                                  themselves; `off` leaves only the manual trigger
                                  (env PULSO_GATEWAY_SCHEDULES)
  --schedule-speed <N>            run rate(...) schedules N times faster (cron keeps the
                                  clock)                             [default: 1]
  --tick-now                      tick every enabled schedule once at start
  --region <NAME>                 region named in events             [default: $AWS_REGION or us-east-1]
  --docs-ui <DIR>                 swagger-ui-dist's folder: serve the API reference page at
                                  /_local/docs  (env PULSO_GATEWAY_DOCS_UI)
  --print-env                     print WS_URL= and WS_ENDPOINT= lines for the template and
                                  --ws-listen, then exit (infra/run-local writes them to .dev/env)
  -h, --help                      print this help
";

const LISTEN_ENV: &str = "PULSO_GATEWAY_LISTEN";
const WS_LISTEN_ENV: &str = "PULSO_GATEWAY_WS_LISTEN";
const FUNCTIONS_DIR_ENV: &str = "PULSO_FUNCTIONS_DIR";
const INVOKE_URL_ENV: &str = "PULSO_INVOKE_URL";
const SCHEDULES_ENV: &str = "PULSO_GATEWAY_SCHEDULES";
const REGION_ENV: &str = "AWS_REGION";
const DOCS_UI_ENV: &str = "PULSO_GATEWAY_DOCS_UI";

/// Instances per function: enough for a browser's parallel requests, few enough for a laptop.
const DEFAULT_MAX_INSTANCES: usize = 4;
/// Extra instances idle for ten minutes are stopped (Lambda keeps them longer, but memory here
/// is the developer's).
const DEFAULT_IDLE_REAP_SECS: u64 = 600;

/// API Gateway's WebSocket idle timeout and connection lifetime, which cannot be raised.
pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const WS_MAX_DURATION: Duration = Duration::from_secs(2 * 60 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub template: PathBuf,
    pub listen: SocketAddr,
    pub ws_listen: SocketAddr,
    pub functions_dir: PathBuf,
    /// `None`: the functions' output goes to the gateway's stderr.
    pub functions_log: Option<PathBuf>,
    pub runtime_listen: SocketAddr,
    pub max_instances: usize,
    pub idle_reap: Duration,
    pub rebuild: bool,
    /// Invoke the functions through this Invoke API instead of running them.
    pub invoke_url: Option<Url>,
    pub timeout: Duration,
    pub ws_idle_timeout: Duration,
    pub ws_max_duration: Duration,
    pub schedules: ScheduleMode,
    /// rate(...) periods are divided by this.
    pub schedule_speed: u32,
    pub tick_now: bool,
    pub region: String,
    /// swagger-ui-dist's folder, for the reference page at `/_local/docs`.
    pub docs_ui: Option<PathBuf>,
}

impl Config {
    /// The defaults, for a template and the folder of the functions' binaries (what tests
    /// start from).
    pub fn new(template: PathBuf, functions_dir: PathBuf) -> Self {
        Self {
            template,
            listen: SocketAddr::from(([127, 0, 0, 1], 4400)),
            ws_listen: SocketAddr::from(([127, 0, 0, 1], 4401)),
            functions_dir,
            functions_log: None,
            runtime_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_instances: DEFAULT_MAX_INSTANCES,
            idle_reap: Duration::from_secs(DEFAULT_IDLE_REAP_SECS),
            rebuild: false,
            invoke_url: None,
            timeout: Duration::from_secs(30),
            ws_idle_timeout: WS_IDLE_TIMEOUT,
            ws_max_duration: WS_MAX_DURATION,
            schedules: ScheduleMode::On,
            schedule_speed: 1,
            tick_now: false,
            region: "us-east-1".to_owned(),
            docs_ui: None,
        }
    }
}

/// Whether schedules tick by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleMode {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    PrintEnv(Config),
    Help,
}

/// Parses `args` (without the program name); `env` looks up environment variables. Flags win
/// over the environment, which wins over defaults.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, CliError> {
    let Some(flags) = Flags::read(args)? else {
        return Ok(Command::Help);
    };
    let print_env = flags.print_env;
    let config = flags.into_config(env)?;
    Ok(if print_env {
        Command::PrintEnv(config)
    } else {
        Command::Run(config)
    })
}

/// A value as given, with where it came from (the flag or the environment variable), which an
/// error about it names.
type Given = Option<(String, String)>;

/// The command line as given, before any value is checked.
#[derive(Default)]
struct Flags {
    template: Given,
    listen: Given,
    ws_listen: Given,
    functions_dir: Given,
    functions_log: Given,
    runtime_listen: Given,
    max_instances: Given,
    idle_reap: Given,
    invoke_url: Given,
    timeout: Given,
    idle: Given,
    max_duration: Given,
    schedules: Given,
    speed: Given,
    region: Given,
    docs_ui: Given,
    rebuild: bool,
    tick_now: bool,
    print_env: bool,
}

impl Flags {
    /// Reads every argument; `None` when one of them asks for help.
    fn read(args: impl IntoIterator<Item = String>) -> Result<Option<Self>, CliError> {
        let mut flags = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if matches!(arg.as_str(), "-h" | "--help") {
                return Ok(None);
            }
            if let Some(switch) = flags.switch(&arg) {
                *switch = true;
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let Some(slot) = flags.slot(&flag) else {
                return Err(CliError::UnknownArgument(arg));
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| CliError::MissingValue(flag.clone()))?,
            };
            *slot = Some((flag, value));
        }
        Ok(Some(flags))
    }

    /// The flags that take no value.
    fn switch(&mut self, arg: &str) -> Option<&mut bool> {
        match arg {
            "--tick-now" => Some(&mut self.tick_now),
            "--print-env" => Some(&mut self.print_env),
            "--rebuild" => Some(&mut self.rebuild),
            _ => None,
        }
    }

    /// Where the value of a flag that takes one goes; `None` for an unknown flag.
    fn slot(&mut self, flag: &str) -> Option<&mut Given> {
        Some(match flag {
            "--template" => &mut self.template,
            "--listen" => &mut self.listen,
            "--ws-listen" => &mut self.ws_listen,
            "--functions-dir" => &mut self.functions_dir,
            "--functions-log" => &mut self.functions_log,
            "--runtime-listen" => &mut self.runtime_listen,
            "--max-instances" => &mut self.max_instances,
            "--idle-reap-secs" => &mut self.idle_reap,
            "--invoke-url" => &mut self.invoke_url,
            "--timeout-secs" => &mut self.timeout,
            "--ws-idle-timeout-secs" => &mut self.idle,
            "--ws-max-connection-secs" => &mut self.max_duration,
            "--schedules" => &mut self.schedules,
            "--schedule-speed" => &mut self.speed,
            "--region" => &mut self.region,
            "--docs-ui" => &mut self.docs_ui,
            _ => return None,
        })
    }

    /// Checks every value, taking the environment's where no flag was given and the defaults
    /// of [`Config::new`] where neither was; the first invalid value is the error.
    fn into_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, CliError> {
        let from_env = |name: &str| env(name).map(|value| (name.to_owned(), value));
        let template = self
            .template
            .map_or_else(|| PathBuf::from("template.yaml"), |(_, v)| PathBuf::from(v));
        let functions_dir = self
            .functions_dir
            .or_else(|| from_env(FUNCTIONS_DIR_ENV))
            .map_or_else(|| PathBuf::from("target/debug"), |(_, v)| PathBuf::from(v));
        let defaults = Config::new(template, functions_dir);
        let region = self
            .region
            .or_else(|| from_env(REGION_ENV))
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| defaults.region.clone());
        Ok(Config {
            listen: address(
                self.listen.or_else(|| from_env(LISTEN_ENV)),
                defaults.listen,
            )?,
            ws_listen: address(
                self.ws_listen.or_else(|| from_env(WS_LISTEN_ENV)),
                defaults.ws_listen,
            )?,
            runtime_listen: address(self.runtime_listen, defaults.runtime_listen)?,
            functions_log: self.functions_log.map(|(_, path)| PathBuf::from(path)),
            max_instances: number(
                self.max_instances,
                defaults.max_instances,
                1..=64,
                "expected a whole number from 1 to 64",
            )?,
            idle_reap: seconds(self.idle_reap, defaults.idle_reap)?,
            rebuild: self.rebuild,
            invoke_url: invoke_url(self.invoke_url.or_else(|| from_env(INVOKE_URL_ENV)))?,
            timeout: seconds(self.timeout, defaults.timeout)?,
            ws_idle_timeout: seconds(self.idle, defaults.ws_idle_timeout)?,
            ws_max_duration: seconds(self.max_duration, defaults.ws_max_duration)?,
            schedules: schedule_mode(
                self.schedules.or_else(|| from_env(SCHEDULES_ENV)),
                defaults.schedules,
            )?,
            schedule_speed: number(
                self.speed,
                defaults.schedule_speed,
                1..=86_400,
                "expected a whole number from 1 to 86400",
            )?,
            tick_now: self.tick_now,
            region,
            docs_ui: self
                .docs_ui
                .or_else(|| from_env(DOCS_UI_ENV))
                .map(|(_, path)| PathBuf::from(path)),
            ..defaults
        })
    }
}

fn address(given: Given, default: SocketAddr) -> Result<SocketAddr, CliError> {
    let Some((origin, text)) = given else {
        return Ok(default);
    };
    text.parse::<SocketAddr>()
        .map_err(|_| invalid(origin, &text, "expected an address such as 127.0.0.1:4400"))
}

/// A whole number within `range`, or the default.
fn number<N: FromStr + PartialOrd>(
    given: Given,
    default: N,
    range: RangeInclusive<N>,
    expected: &'static str,
) -> Result<N, CliError> {
    let Some((origin, text)) = given else {
        return Ok(default);
    };
    text.trim()
        .parse::<N>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| invalid(origin, &text, expected))
}

fn invoke_url(given: Given) -> Result<Option<Url>, CliError> {
    let Some((origin, text)) = given else {
        return Ok(None);
    };
    parse_http_url(&text).map(Some).ok_or_else(|| {
        invalid(
            origin,
            &text,
            "expected a URL such as http://127.0.0.1:4401",
        )
    })
}

fn schedule_mode(given: Given, default: ScheduleMode) -> Result<ScheduleMode, CliError> {
    let Some((origin, text)) = given else {
        return Ok(default);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(ScheduleMode::On),
        "off" => Ok(ScheduleMode::Off),
        _ => Err(invalid(origin, &text, "expected on or off")),
    }
}

/// The longest a duration flag may be: a week is more than any local run needs, and keeps
/// deadlines computed from it far from overflowing.
const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;

/// A whole number of seconds from 1 to a week from a flag, or the default.
fn seconds(given: Given, default: Duration) -> Result<Duration, CliError> {
    let Some((origin, text)) = given else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|secs| (1..=MAX_SECONDS).contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            invalid(
                origin,
                &text,
                "expected a whole number of seconds from 1 to 604800",
            )
        })
}

fn parse_http_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
}

fn invalid(origin: String, value: &str, expected: &'static str) -> CliError {
    CliError::InvalidValue {
        origin,
        value: value.to_owned(),
        expected,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unknown argument `{0}`")]
    UnknownArgument(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("invalid {origin} `{value}`: {expected}")]
    InvalidValue {
        /// The flag or environment variable the value came from.
        origin: String,
        value: String,
        expected: &'static str,
    },
}

#[cfg(test)]
mod tests;
