//! node-agent: the kubelet and scheduler of Switchyard's local environment.
//!
//!   node-agent run --kubeconfig PATH --state-dir DIR [--node-name NAME]
//!   node-agent signal --state-dir DIR --namespace NS --pod POD --signal KILL|STOP|CONT

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_e2e::agent;

#[derive(Parser)]
#[command(
    name = "node-agent",
    about = "Kubelet and scheduler stand-in that runs MySQL pods as local mariadbd and mysqld processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register the node and run its pods until interrupted.
    Run {
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value = agent::DEFAULT_NODE_NAME)]
        node_name: String,
        /// The server binary every MySQL-family pod runs.
        #[arg(long, default_value = "/usr/sbin/mariadbd")]
        mariadbd: PathBuf,
        /// A Debian sid root with MySQL (hack/sid-root.sh), whose mysqld runs
        /// MySQL and Percona images; without it they are refused.
        #[arg(long, env = "SWITCHYARD_MYSQL_ROOT")]
        mysql_root: Option<PathBuf>,
        /// Port of the kubelet API that serves `kubectl logs`; 0 turns it off.
        #[arg(long, default_value_t = agent::kubelet_api::DEFAULT_PORT)]
        kubelet_port: u16,
    },
    /// Send a signal to a pod's mariadbd (fault injection for tests).
    Signal {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        pod: String,
        /// KILL, STOP, CONT or TERM.
        #[arg(long)]
        signal: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in localenv's log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn,tower=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Run { kubeconfig, state_dir, node_name, mariadbd, mysql_root, kubelet_port } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("node-agent: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let config = agent::AgentConfig { kubeconfig, state_dir, node_name, mariadbd, mysql_root, kubelet_port };
            match runtime.block_on(agent::run(config)) {
                Ok(()) => {
                    // Detached servers and probe tasks must not hold the exit.
                    runtime.shutdown_background();
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Signal { state_dir, namespace, pod, signal } => {
            match agent::signal::signal_pod(&state_dir, &namespace, &pod, &signal) {
                Ok(pid) => {
                    println!(
                        "sent SIG{} to mariadbd pid {pid} of pod {namespace}/{pod}",
                        signal.to_ascii_uppercase().trim_start_matches("SIG")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("node-agent signal: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
