//! Command-line flags and environment variables of `pulso-gateway`, parsed by hand to keep the
//! dev tool's dependency tree small.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

pub const USAGE: &str = "\
Usage: pulso-gateway [OPTIONS]

Stands in for API Gateway locally: reads the SAM template, forwards HTTP API requests to their
functions under `cargo lambda watch`, serves the WebSocket API and its @connections API, and
ticks the functions' schedules like EventBridge.

Options:
  --template <PATH>               SAM template to read               [default: template.yaml]
  --listen <ADDR>                 HTTP API address                   [default: 127.0.0.1:3000]
                                  (env PULSO_GATEWAY_LISTEN)
  --ws-listen <ADDR>              WebSocket API and @connections     [default: 127.0.0.1:3001]
                                  address, used when the template declares a WebSocket API
                                  (env PULSO_GATEWAY_WS_LISTEN)
  --watch <URL>                   cargo lambda watch base URL        [default: http://127.0.0.1:9000]
                                  (env PULSO_WATCH_URL)
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
const WATCH_ENV: &str = "PULSO_WATCH_URL";
const SCHEDULES_ENV: &str = "PULSO_GATEWAY_SCHEDULES";
const REGION_ENV: &str = "AWS_REGION";

/// API Gateway's WebSocket idle timeout and connection lifetime, which cannot be raised.
pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const WS_MAX_DURATION: Duration = Duration::from_secs(2 * 60 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub template: PathBuf,
    pub listen: SocketAddr,
    pub ws_listen: SocketAddr,
    pub watch: Url,
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
    /// The defaults, for a template and a watch URL (what tests start from).
    pub fn new(template: PathBuf, watch: Url) -> Self {
        Self {
            template,
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            ws_listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            watch,
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
    let mut watch = None;
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
            "--watch" => &mut watch,
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
    let (watch_origin, watch) = watch
        .or_else(|| from_env(WATCH_ENV))
        .unwrap_or_else(|| default("http://127.0.0.1:9000"));
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

    let config = Config {
        template: PathBuf::from(template.map_or_else(|| "template.yaml".to_owned(), |(_, v)| v)),
        listen,
        ws_listen,
        watch: parse_watch_url(&watch).ok_or_else(|| {
            invalid(
                watch_origin,
                &watch,
                "expected a URL such as http://127.0.0.1:9000",
            )
        })?,
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

fn parse_watch_url(text: &str) -> Option<Url> {
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
        assert_eq!(config.watch.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.ws_idle_timeout, Duration::from_secs(600));
        assert_eq!(config.ws_max_duration, Duration::from_secs(7200));
        assert_eq!(config.schedules, ScheduleMode::On);
        assert_eq!(config.schedule_speed, 1);
        assert!(!config.tick_now);
        assert_eq!(config.region, "us-east-1");
        let new = Config::new(config.template.clone(), config.watch.clone());
        assert_eq!(new, config);
    }

    #[test]
    fn flags_beat_environment_which_beats_defaults() {
        let env = [
            ("PULSO_GATEWAY_LISTEN", "127.0.0.1:4000"),
            ("PULSO_GATEWAY_WS_LISTEN", "127.0.0.1:4001"),
            ("PULSO_WATCH_URL", "http://127.0.0.1:9100"),
            ("PULSO_GATEWAY_SCHEDULES", "off"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let config = run(&[], &env).expect("env");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.ws_listen.port(), 4001);
        assert_eq!(config.watch.port(), Some(9100));
        assert_eq!(config.schedules, ScheduleMode::Off);
        assert_eq!(config.region, "eu-west-1");

        let config = run(
            &[
                "--listen",
                "0.0.0.0:5000",
                "--ws-listen=127.0.0.1:5001",
                "--watch=http://[::1]:9200",
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
        assert_eq!(config.watch.port(), Some(9200));
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
        assert!(message(&["--watch", "localhost:9000"], &[]).contains("invalid --watch"));
        assert!(message(&["--schedules", "sometimes"], &[]).contains("expected on or off"));
        assert!(message(&["--schedule-speed", "0"], &[]).contains("invalid --schedule-speed"));
        assert!(message(&["--ws-listen", "3001"], &[]).contains("invalid --ws-listen `3001`"));
        assert!(
            message(&[], &[("PULSO_GATEWAY_LISTEN", "localhost")])
                .contains("invalid PULSO_GATEWAY_LISTEN `localhost`")
        );
    }
}
