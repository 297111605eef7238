use std::process::ExitCode;

use clap::Parser as _;
use latchkey::cli::{Cli, CliError};
use latchkey::telemetry;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(outcome) = cli.run_standalone() {
        return exit_code(outcome);
    }
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("latchkey: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log_filter, settings.log_format);
    exit_code(cli.run(settings).await)
}

fn exit_code(outcome: Result<(), CliError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("latchkey: {error}");
            ExitCode::FAILURE
        }
    }
}
