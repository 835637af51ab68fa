//! The `switchyard` command: `run` the operator, print the `crd`s, or `move`
//! tables with the data-movement engine.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Kubernetes operator for routine MySQL DBA work")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "SWITCHYARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(switchyard::operator::RunArgs),
    /// Move tables between servers with the data-movement engine, outside
    /// Kubernetes: copy, apply changes, verify. For benchmarks, tests and
    /// DBAs checking a source before they write a resource.
    Move(switchyard::movement::cli::MoveArgs),
    /// Print all CustomResourceDefinitions as YAML, or write one file each.
    Crd {
        /// Write `<name>.yaml` files into these directories instead of printing.
        #[arg(long = "out-dir")]
        out_dirs: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out_dirs } => {
            let rendered = switchyard::crd::rendered()?;
            if out_dirs.is_empty() {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                for (_, yaml) in &rendered {
                    // A closed pipe (`| head`) is the reader's choice, not an error.
                    if write!(out, "---\n{yaml}").is_err() {
                        return Ok(());
                    }
                }
            }
            for dir in out_dirs {
                std::fs::create_dir_all(&dir)?;
                for (name, yaml) in &rendered {
                    std::fs::write(dir.join(name), yaml)?;
                }
            }
            Ok(())
        }
        Command::Move(args) => {
            init_logging(cli.log_format);
            let code = switchyard::movement::cli::run(args).await;
            std::process::exit(code)
        }
        Command::Run(args) => {
            init_logging(cli.log_format);
            switchyard::operator::run(args).await
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}
