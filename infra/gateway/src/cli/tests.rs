//! The command line as `pulso-gateway` reads it: defaults, flags over environment over
//! defaults, and the message for each mistake.

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
    assert_eq!(config.listen.to_string(), "127.0.0.1:4400");
    assert_eq!(config.ws_listen.to_string(), "127.0.0.1:4401");
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
    let message =
        |args: &[&str], env: &[(&str, &str)]| run(args, env).expect_err("should fail").to_string();
    assert_eq!(message(&["--port", "1"], &[]), "unknown argument `--port`");
    assert_eq!(message(&["--listen"], &[]), "--listen needs a value");
    assert!(message(&["--timeout-secs", "0"], &[]).contains("invalid --timeout-secs `0`"));
    assert!(message(&["--ws-max-connection-secs", "604801"], &[]).contains("from 1 to 604800"));
    assert!(message(&["--max-instances", "0"], &[]).contains("invalid --max-instances"));
    assert!(message(&["--invoke-url", "localhost:9000"], &[]).contains("invalid --invoke-url"));
    assert!(message(&["--runtime-listen", "9000"], &[]).contains("invalid --runtime-listen"));
    assert!(message(&["--schedules", "sometimes"], &[]).contains("expected on or off"));
    assert!(message(&["--schedule-speed", "0"], &[]).contains("invalid --schedule-speed"));
    assert!(message(&["--ws-listen", "4401"], &[]).contains("invalid --ws-listen `4401`"));
    assert!(
        message(&[], &[("PULSO_GATEWAY_LISTEN", "localhost")])
            .contains("invalid PULSO_GATEWAY_LISTEN `localhost`")
    );
}
