//! `karte-server`: the clinic inference server, or with `--local` the desktop app's worker process.

use std::process::ExitCode;

use clap::Parser;
use karte_server::cli::ServeArgs;

#[derive(Parser)]
#[command(
    name = "karte-server",
    about = "Karte の推論サーバー（OpenAI 互換 API）"
)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    match karte_server::cli::run(Args::parse().serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("エラー [{}]: {}", e.code, e.message);
            ExitCode::from(e.code.exit_status())
        }
    }
}
