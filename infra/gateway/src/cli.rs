//! Command-line flags and environment variables of `pulso-gateway`, parsed by hand to keep the
//! dev tool's dependency tree small.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

pub const USAGE: &str = "\
Usage: pulso-gateway [OPTIONS]

Stands in for API Gateway HTTP API locally: reads the routes from the SAM template and forwards
each request to its function under `cargo lambda watch`.

Options:
  --template <PATH>     SAM template to read routes from   [default: template.yaml]
  --listen <ADDR>       address to serve on                 [default: 127.0.0.1:3000]
                        (env PULSO_GATEWAY_LISTEN)
  --watch <URL>         cargo lambda watch base URL         [default: http://127.0.0.1:9000]
                        (env PULSO_WATCH_URL)
  --timeout-secs <N>    integration timeout in seconds      [default: 30]
  -h, --help            print this help
";

const LISTEN_ENV: &str = "PULSO_GATEWAY_LISTEN";
const WATCH_ENV: &str = "PULSO_WATCH_URL";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub template: PathBuf,
    pub listen: SocketAddr,
    pub watch: Url,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Config),
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
    let mut watch = None;
    let mut timeout = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
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
            "--watch" => &mut watch,
            "--timeout-secs" => &mut timeout,
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
    let (watch_origin, watch) = watch
        .or_else(|| from_env(WATCH_ENV))
        .unwrap_or_else(|| default("http://127.0.0.1:9000"));
    let (timeout_origin, timeout) = timeout.unwrap_or_else(|| default("30"));

    Ok(Command::Run(Config {
        template: PathBuf::from(template.map_or_else(|| "template.yaml".to_owned(), |(_, v)| v)),
        listen: listen.parse().map_err(|_| {
            invalid(
                listen_origin,
                &listen,
                "expected an address such as 127.0.0.1:3000",
            )
        })?,
        watch: parse_watch_url(&watch).ok_or_else(|| {
            invalid(
                watch_origin,
                &watch,
                "expected a URL such as http://127.0.0.1:9000",
            )
        })?,
        timeout: timeout
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                invalid(
                    timeout_origin,
                    &timeout,
                    "expected a whole number of seconds above 0",
                )
            })?,
    }))
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

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(args.iter().map(|a| a.to_string()), lookup)? {
            Command::Run(config) => Ok(config),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[], &[]).expect("defaults");
        assert_eq!(config.template, PathBuf::from("template.yaml"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.watch.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn flags_beat_environment_which_beats_defaults() {
        let env = [
            ("PULSO_GATEWAY_LISTEN", "127.0.0.1:4000"),
            ("PULSO_WATCH_URL", "http://127.0.0.1:9100"),
        ];
        let config = run(&[], &env).expect("env");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.watch.port(), Some(9100));

        let config = run(
            &[
                "--listen",
                "0.0.0.0:5000",
                "--watch=http://[::1]:9200",
                "--template",
                "t.yaml",
                "--timeout-secs=5",
            ],
            &env,
        )
        .expect("flags");
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.watch.port(), Some(9200));
        assert_eq!(config.template, PathBuf::from("t.yaml"));
        assert_eq!(config.timeout, Duration::from_secs(5));
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
        assert!(message(&["--watch", "localhost:9000"], &[]).contains("invalid --watch"));
        assert!(
            message(&[], &[("PULSO_GATEWAY_LISTEN", "localhost")])
                .contains("invalid PULSO_GATEWAY_LISTEN `localhost`")
        );
    }
}
