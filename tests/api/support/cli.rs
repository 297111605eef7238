//! Running the real `latchkey` binary from tests: on its own, or against a test
//! application's database as an operator would.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{TestApp, TestDatabase};

/// The binary, with a clean environment (nothing from the developer's shell leaks in) and
/// a scratch working directory, so the default `latchkey.db` never lands in the repository.
pub fn latchkey(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.env_clear().current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs the binary to completion, with `stdin` as its standard input, off the async thread.
pub async fn run(mut command: Command, args: &[&str], stdin: &str) -> Output {
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("starting latchkey");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().expect("running latchkey")
    })
    .await
    .unwrap()
}

/// Runs `latchkey ARGS` on the database with `DATABASE_URL` and `env` set, and nothing on
/// standard input.
pub async fn run_on(database: &TestDatabase, env: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut full_env = vec![
        ("DATABASE_URL", database.url.as_str()),
        ("LATCHKEY_LOG", "warn"),
    ];
    full_env.extend_from_slice(env);
    run(latchkey(dir.path(), &full_env), args, "").await
}

impl TestApp {
    /// Runs `latchkey ARGS` on this application's database, as an operator would beside it.
    pub async fn cli(&self, args: &[&str]) -> Output {
        run_on(&self.database, &[], args).await
    }
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A success: exit 0 without a word on standard error; answers standard output.
pub fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}; stderr: {}; stdout: {}",
        output.status,
        stderr_of(output),
        stdout_of(output)
    );
    assert_eq!(stderr_of(output), "", "nothing on standard error");
    stdout_of(output)
}

/// A failure: a non-zero exit, and exactly one line on standard error, without a panic.
pub fn assert_one_line_failure(output: &Output) -> String {
    let stderr = stderr_of(output);
    assert!(!output.status.success(), "exit 0; stderr: {stderr}");
    assert!(
        output.status.code().is_some(),
        "killed by a signal: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.trim().len() > 10, "a reason: {stderr:?}");
    stderr
}
