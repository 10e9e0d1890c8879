//! The `statewall` binary.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// statewall: a stateful firewall fast path with Linux conntrack semantics.
#[derive(Parser)]
#[command(name = "statewall", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the dataplane (the embedded pktgen demo when no config is given).
    Run {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules file (overrides the config's `rules.file`).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// Number of workers (overrides the config).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Run a capture through the worker pipeline and print every packet's state.
    Replay(statewall::replay::ReplayArgs),
    /// Talk to a running statewall (rules, conntrack, stats).
    Ctl(statewall::ctl::CtlArgs),
    /// Validate a configuration file.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Rulesets.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Check the host against a configuration (hugepages, memlock, capabilities,
    /// interfaces, cores, libdpdk, AF_XDP); changes nothing. Exit 0 no FAIL, 1 a FAIL,
    /// 2 the configuration is invalid.
    Doctor {
        /// Configuration (default /etc/statewall/statewall.toml, else the embedded demo).
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON output: [{"check", "status", "detail", "fix"}].
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and validate a TOML configuration (and its rules file); exit 0 or 1.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Parse and compile a rules file (like `iptables-restore --test`).
    Check {
        /// iptables-restore or ip6tables-restore text.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    // Behave like a Unix tool when piped into `head`: die quietly on a closed pipe.
    // SAFETY: setting SIGPIPE to its default disposition at start-up, before any thread
    // exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STATEWALL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(cli) {
        Ok(code) => code,
        // `statewall ctl conntrack list | head`: a closed stdout is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("statewall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Run {
            config,
            rules,
            duration,
            workers,
        } => {
            let mut cfg = match &config {
                Some(p) => statewall::config::Config::load(p)?,
                None => statewall::config::Config::embedded(),
            };
            if let Some(r) = rules {
                cfg.rules.file = Some(r);
            }
            if let Some(w) = workers {
                cfg.dataplane.workers = w;
                cfg.dataplane.cores.clear();
            }
            statewall::run::run(cfg, duration, config.is_none())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Replay(args) => {
            let mut out = std::io::stdout().lock();
            statewall::replay::replay(&args, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ctl(args) => {
            let mut out = std::io::stdout().lock();
            statewall::ctl::run(&args, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => {
            let cfg = statewall::config::Config::load(&file)?;
            let rs = statewall::runtime::load_rules(&cfg, false)?;
            println!(
                "{}: OK ({} port(s), {} pair(s), {} worker(s))",
                file.display(),
                cfg.ports.len(),
                cfg.pairs.len(),
                cfg.worker_count()
            );
            println!("{}", rs.summary());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Doctor { config, json } => {
            let mut roots = statewall::doctor::Roots::default();
            // Fixture trees for tests, as deploy/host/prepare-host.sh takes them.
            if let Some(p) = std::env::var_os("STATEWALL_SYSFS") {
                roots.sys = p.into();
            }
            if let Some(p) = std::env::var_os("STATEWALL_PROCFS") {
                roots.proc_ = p.into();
            }
            let mut out = std::io::stdout().lock();
            let code = statewall::doctor::doctor(config.as_deref(), json, &roots, &mut out)?;
            Ok(ExitCode::from(code))
        }
        Cmd::Rules {
            cmd: RulesCmd::Check { file },
        } => match dataplane::ruleset::Ruleset::from_file(&file) {
            Ok(rs) => {
                println!("{}: OK", file.display());
                println!("{}", rs.summary());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
