//! Command-line flags and environment variables of `pulso-gateway`, parsed by hand to keep the
//! dev tool's dependency tree small.

use std::net::SocketAddr;
use std::path::PathBuf;
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
  --listen <ADDR>                 HTTP API address                   [default: 127.0.0.1:3000]
                                  (env PULSO_GATEWAY_LISTEN)
  --ws-listen <ADDR>              WebSocket API and @connections     [default: 127.0.0.1:3001]
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
}

impl Config {
    /// The defaults, for a template and the folder of the functions' binaries (what tests
    /// start from).
    pub fn new(template: PathBuf, functions_dir: PathBuf) -> Self {
        Self {
            template,
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            ws_listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
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
    let mut template = None;
    let mut listen = None;
    let mut ws_listen = None;
    let mut functions_dir = None;
    let mut functions_log = None;
    let mut runtime_listen = None;
    let mut max_instances = None;
    let mut idle_reap = None;
    let mut rebuild = false;
    let mut invoke_url = None;
    let mut timeout = None;
    let mut idle = None;
    let mut max_duration = None;
    let mut schedules = None;
    let mut speed = None;
    let mut region = None;
    let mut tick_now = false;
    let mut print_env = false;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--tick-now" => {
                tick_now = true;
                continue;
            }
            "--print-env" => {
                print_env = true;
                continue;
            }
            "--rebuild" => {
                rebuild = true;
                continue;
            }
            _ => {}
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--template" => &mut template,
            "--listen" => &mut listen,
            "--ws-listen" => &mut ws_listen,
            "--functions-dir" => &mut functions_dir,
            "--functions-log" => &mut functions_log,
            "--runtime-listen" => &mut runtime_listen,
            "--max-instances" => &mut max_instances,
            "--idle-reap-secs" => &mut idle_reap,
            "--invoke-url" => &mut invoke_url,
            "--timeout-secs" => &mut timeout,
            "--ws-idle-timeout-secs" => &mut idle,
            "--ws-max-connection-secs" => &mut max_duration,
            "--schedules" => &mut schedules,
            "--schedule-speed" => &mut speed,
            "--region" => &mut region,
            _ => return Err(CliError::UnknownArgument(arg)),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| CliError::MissingValue(flag.clone()))?,
        };
        *slot = Some((flag, value));
    }

    let from_env = |name: &str| env(name).map(|value| (name.to_owned(), value));
    let default = |value: &str| ("default".to_owned(), value.to_owned());
    let (listen_origin, listen) = listen
        .or_else(|| from_env(LISTEN_ENV))
        .unwrap_or_else(|| default("127.0.0.1:3000"));
    let (ws_listen_origin, ws_listen) = ws_listen
        .or_else(|| from_env(WS_LISTEN_ENV))
        .unwrap_or_else(|| default("127.0.0.1:3001"));
    let functions_dir = functions_dir
        .or_else(|| from_env(FUNCTIONS_DIR_ENV))
        .map_or_else(|| PathBuf::from("target/debug"), |(_, v)| PathBuf::from(v));
    let (schedules_origin, schedules) = schedules
        .or_else(|| from_env(SCHEDULES_ENV))
        .unwrap_or_else(|| default("on"));
    let region = region
        .or_else(|| from_env(REGION_ENV))
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());

    let address = |origin: String, text: &str| {
        text.parse::<SocketAddr>()
            .map_err(|_| invalid(origin, text, "expected an address such as 127.0.0.1:3000"))
    };
    let listen = address(listen_origin, &listen)?;
    let ws_listen = address(ws_listen_origin, &ws_listen)?;
    let runtime_listen = match runtime_listen {
        Some((origin, text)) => address(origin, &text)?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };

    let config = Config {
        template: PathBuf::from(template.map_or_else(|| "template.yaml".to_owned(), |(_, v)| v)),
        listen,
        ws_listen,
        functions_dir,
        functions_log: functions_log.map(|(_, path)| PathBuf::from(path)),
        runtime_listen,
        max_instances: match max_instances {
            None => DEFAULT_MAX_INSTANCES,
            Some((origin, text)) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| invalid(origin, &text, "expected a whole number from 1 to 64"))?,
        },
        idle_reap: seconds(idle_reap, DEFAULT_IDLE_REAP_SECS)?,
        rebuild,
        invoke_url: match invoke_url.or_else(|| from_env(INVOKE_URL_ENV)) {
            None => None,
            Some((origin, text)) => Some(parse_http_url(&text).ok_or_else(|| {
                invalid(
                    origin,
                    &text,
                    "expected a URL such as http://127.0.0.1:3001",
                )
            })?),
        },
        timeout: seconds(timeout, 30)?,
        ws_idle_timeout: seconds(idle, WS_IDLE_TIMEOUT.as_secs())?,
        ws_max_duration: seconds(max_duration, WS_MAX_DURATION.as_secs())?,
        schedules: match schedules.trim().to_ascii_lowercase().as_str() {
            "on" => ScheduleMode::On,
            "off" => ScheduleMode::Off,
            _ => return Err(invalid(schedules_origin, &schedules, "expected on or off")),
        },
        schedule_speed: match speed {
            None => 1,
            Some((origin, text)) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=86_400).contains(n))
                .ok_or_else(|| invalid(origin, &text, "expected a whole number from 1 to 86400"))?,
        },
        tick_now,
        region,
    };
    Ok(if print_env {
        Command::PrintEnv(config)
    } else {
        Command::Run(config)
    })
}

/// The longest a duration flag may be: a week is more than any local run needs, and keeps
/// deadlines computed from it far from overflowing.
const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;

/// A whole number of seconds from 1 to a week from a flag, or the default.
fn seconds(flag: Option<(String, String)>, default: u64) -> Result<Duration, CliError> {
    let Some((origin, text)) = flag else {
        return Ok(Duration::from_secs(default));
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
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        parse(args.iter().map(|a| a.to_string()), lookup)
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
        match parse_with(args, env)? {
            Command::Run(config) => Ok(config),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[], &[]).expect("defaults");
        assert_eq!(config.template, PathBuf::from("template.yaml"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.ws_listen.to_string(), "127.0.0.1:3001");
        assert_eq!(config.functions_dir, PathBuf::from("target/debug"));
        assert_eq!(config.functions_log, None);
        assert_eq!(config.runtime_listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.max_instances, 4);
        assert_eq!(config.idle_reap, Duration::from_secs(600));
        assert!(!config.rebuild);
        assert_eq!(config.invoke_url, None);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.ws_idle_timeout, Duration::from_secs(600));
        assert_eq!(config.ws_max_duration, Duration::from_secs(7200));
        assert_eq!(config.schedules, ScheduleMode::On);
        assert_eq!(config.schedule_speed, 1);
        assert!(!config.tick_now);
        assert_eq!(config.region, "us-east-1");
        let new = Config::new(config.template.clone(), config.functions_dir.clone());
        assert_eq!(new, config);
    }

    #[test]
    fn flags_beat_environment_which_beats_defaults() {
        let env = [
            ("PULSO_GATEWAY_LISTEN", "127.0.0.1:4000"),
            ("PULSO_GATEWAY_WS_LISTEN", "127.0.0.1:4001"),
            ("PULSO_FUNCTIONS_DIR", "/opt/fns"),
            ("PULSO_GATEWAY_SCHEDULES", "off"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let config = run(&[], &env).expect("env");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.ws_listen.port(), 4001);
        assert_eq!(config.functions_dir, PathBuf::from("/opt/fns"));
        assert_eq!(config.schedules, ScheduleMode::Off);
        assert_eq!(config.region, "eu-west-1");

        let config = run(
            &[
                "--listen",
                "0.0.0.0:5000",
                "--ws-listen=127.0.0.1:5001",
                "--functions-dir=target/release",
                "--functions-log",
                ".dev/functions.log",
                "--runtime-listen=127.0.0.1:9100",
                "--max-instances",
                "8",
                "--idle-reap-secs=60",
                "--rebuild",
                "--invoke-url=http://[::1]:9200",
                "--template",
                "t.yaml",
                "--timeout-secs=5",
                "--ws-idle-timeout-secs",
                "7",
                "--ws-max-connection-secs=8",
                "--schedules",
                "ON",
                "--schedule-speed",
                "60",
                "--tick-now",
                "--region",
                "eu-south-2",
            ],
            &env,
        )
        .expect("flags");
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.ws_listen.port(), 5001);
        assert_eq!(config.functions_dir, PathBuf::from("target/release"));
        assert_eq!(
            config.functions_log,
            Some(PathBuf::from(".dev/functions.log"))
        );
        assert_eq!(config.runtime_listen.port(), 9100);
        assert_eq!(config.max_instances, 8);
        assert_eq!(config.idle_reap, Duration::from_secs(60));
        assert!(config.rebuild);
        assert_eq!(config.invoke_url.and_then(|u| u.port()), Some(9200));
        assert_eq!(config.template, PathBuf::from("t.yaml"));
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.ws_idle_timeout, Duration::from_secs(7));
        assert_eq!(config.ws_max_duration, Duration::from_secs(8));
        assert_eq!(config.schedules, ScheduleMode::On);
        assert_eq!(config.schedule_speed, 60);
        assert!(config.tick_now);
        assert_eq!(config.region, "eu-south-2");
    }

    #[test]
    fn print_env_is_its_own_command() {
        match parse_with(&["--print-env", "--ws-listen", "127.0.0.1:4001"], &[]) {
            Ok(Command::PrintEnv(config)) => assert_eq!(config.ws_listen.port(), 4001),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(
            parse(["--help".to_owned()], |_| None).ok(),
            Some(Command::Help)
        );
        let message = |args: &[&str], env: &[(&str, &str)]| {
            run(args, env).expect_err("should fail").to_string()
        };
        assert_eq!(message(&["--port", "1"], &[]), "unknown argument `--port`");
        assert_eq!(message(&["--listen"], &[]), "--listen needs a value");
        assert!(message(&["--timeout-secs", "0"], &[]).contains("invalid --timeout-secs `0`"));
        assert!(message(&["--ws-max-connection-secs", "604801"], &[]).contains("from 1 to 604800"));
        assert!(message(&["--max-instances", "0"], &[]).contains("invalid --max-instances"));
        assert!(message(&["--invoke-url", "localhost:9000"], &[]).contains("invalid --invoke-url"));
        assert!(message(&["--runtime-listen", "9000"], &[]).contains("invalid --runtime-listen"));
        assert!(message(&["--schedules", "sometimes"], &[]).contains("expected on or off"));
        assert!(message(&["--schedule-speed", "0"], &[]).contains("invalid --schedule-speed"));
        assert!(message(&["--ws-listen", "3001"], &[]).contains("invalid --ws-listen `3001`"));
        assert!(
            message(&[], &[("PULSO_GATEWAY_LISTEN", "localhost")])
                .contains("invalid PULSO_GATEWAY_LISTEN `localhost`")
        );
    }
}
