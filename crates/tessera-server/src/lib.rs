//! `tessera`: the Tessera server and its administration commands. The binary's
//! `main` is [`main_entry`]; it is a library so that other binaries (the
//! end-to-end suite's server) run exactly the same program.

mod batch;
mod clock;
mod commands;
mod history;
mod kept_responses;
mod settings;
mod webhook_transport;
mod webhook_worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::settings::Settings;

/// Limited-use tickets as a service: issue short codes and opaque tokens under a
/// policy, redeem them a bounded number of times inside a time window.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API (creates and migrates the database first).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage tickets directly on the database (operator commands, no API key).
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Manage the master key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-wrap the root key under TESSERA_MASTER_KEY, opening it with
    /// TESSERA_MASTER_KEY_PREVIOUS (docs/security.md, "Rotating the master key").
    /// Every issued code, link, key and sealed secret keeps working.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant and print it with its first admin API key, as JSON on stdout.
    Create {
        /// The tenant's display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TicketsCommand {
    /// Issue many tickets of a program into a new CSV file (`ticketId,code`,
    /// mode 0600: it holds the codes), with progress on stderr.
    Issue {
        /// The program's id (`prg_…`).
        #[arg(long, value_name = "ID")]
        program: String,
        /// How many tickets: 1 to 1000000, all or nothing against the program's cap.
        #[arg(long, value_name = "N")]
        count: String,
        /// The CSV file to create; an existing file is never overwritten.
        #[arg(long, value_name = "FILE.csv")]
        out: PathBuf,
        /// Redemptions allowed per ticket (default: the program's).
        #[arg(long, value_name = "M")]
        max_redemptions: Option<String>,
    },
}

/// Exit code for a setting the server cannot start with (docs/operations.md).
const EXIT_BAD_SETTING: u8 = 2;

/// The whole `tessera` program: parses the command line, reads the settings and
/// runs the command; returns the process's exit code.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("tessera: bad setting {error}");
            return ExitCode::from(EXIT_BAD_SETTING);
        }
    };
    init_logging(settings.log_format);
    let outcome = match cli.command {
        Command::Serve => commands::serve(settings),
        Command::Migrate => commands::migrate(&settings),
        Command::Tenant {
            command: TenantCommand::Create { name },
        } => commands::create_tenant(&settings, name),
        Command::Keys {
            command: KeysCommand::Rotate,
        } => commands::rotate_keys(&settings),
        Command::Tickets {
            command:
                TicketsCommand::Issue {
                    program,
                    count,
                    out,
                    max_redemptions,
                },
        } => batch::issue_tickets(
            &settings,
            &batch::IssueArgs {
                program,
                count,
                out,
                max_redemptions,
            },
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr, so commands that print JSON keep stdout for the document.
/// `json`: one JSON object per line (tracing-subscriber's JSON formatter), with
/// the fields of the current span (a request's `request_id`).
fn init_logging(format: settings::LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        settings::LogFormat::Json => builder.json().with_current_span(true).init(),
        settings::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
