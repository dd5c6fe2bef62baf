//! The `modstash` binary: parse arguments, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use modstash::cli::{Cli, Command, ConfigCommand, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command's own output matters more than progress logs; `serve` logs at info.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format, default_level);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("modstash: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let file = cli.file_settings().map_err(|e| e.to_string())?;
    match &cli.command {
        Command::Config(ConfigCommand::Show(args)) => {
            let settings = args.resolve(&file).map_err(|e| e.to_string())?;
            print!("{}", settings.to_toml());
            Ok(())
        }
        Command::Ls(args) => modstash::inspect::run::ls(args, &file).map_err(|e| e.to_string()),
        Command::Verify(args) => {
            modstash::inspect::run::verify(args, &file).map_err(|e| e.to_string())
        }
        Command::Rm(args) => modstash::inspect::run::rm(args, &file).map_err(|e| e.to_string()),
        Command::Prefetch(args) => modstash::prefetch::run(args, &file).map_err(|e| e.to_string()),
        Command::Serve(args) => {
            let settings = args.resolve(&file).map_err(|e| e.to_string())?;
            // Blocking threads serve local file reads; a bound keeps a burst of downloads from
            // growing hundreds of threads (and their memory) for no gain on a few cores.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(64)
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let listener = listen(settings.listen)
                    .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
                modstash::serve(listener, settings, shutdown_signal())
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }
}

/// Binds with a deep accept backlog: a thousand `go` processes connecting at once must not see
/// dropped SYNs (retried only after a second) behind the default backlog of 128.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs sent to files or collectors stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
