//! The `tessera-ledger` command line: [`parse`] turns the arguments into a [`Command`] or
//! a [`UsageError`] (a sentence and exit status 2, never a panic); [`run_admin`] runs the
//! tenant and token commands against the database and returns what to print.
//!
//! Hand-rolled rather than `clap`: five subcommands with at most three flags each, and the
//! argument rules (a tenant id, a label, a duration) are the domain's own parsers, which
//! the admin API applies too.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::tokens::{
    is_shown_prefix, ExpiresIn, IssuedToken, TenantName, TokenInfo, TokenLabel, TokenRequest,
    TokenState,
};
use tessera_domain::{FieldError, TenantId, TokenId};

use crate::organizers::{tenants, tokens};

pub const USAGE: &str = "usage: tessera-ledger [COMMAND]
  serve                       run the ledger (default)
  migrate                     create the database if needed and apply migrations
  seed                        migrate, then add demo events and print an admin token
  tenant create --name NAME   a tenant and its first admin token (printed once)
  tenant list                 every tenant, with its count of live tokens
  token create --tenant ID [--label LABEL] [--expires-in 30d|12h|90m]
                              another admin token for a tenant (printed once)
  token list [--tenant ID]    tokens' metadata: id, prefix, label, created, last used,
                              expiry, revocation (never the token)
  token revoke ID|PREFIX      stop a token working, by its id or its listed prefix
The tenant and token commands migrate first, like `migrate`.
Configuration comes from the environment (DATABASE_URL, …); see .env.example.";

/// The label of a token made by `token create` without `--label`.
pub const CLI_TOKEN_LABEL: &str = "cli";
/// Tenants `tenant list` prints at most (past that, ask the database).
pub const TENANTS_LISTED_MAX: i64 = 10_000;
/// Tokens `token list` without `--tenant` prints at most.
pub const ALL_TOKENS_LISTED_MAX: i64 = 10_000;

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    Seed,
    Help,
    Admin(AdminCommand),
}

/// The tenant and token commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    TenantCreate {
        name: TenantName,
    },
    TenantList,
    TokenCreate {
        tenant: TenantId,
        request: TokenRequest,
    },
    TokenList {
        tenant: Option<TenantId>,
    },
    TokenRevoke(TokenRef),
}

/// How `token revoke` names a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    Id(TokenId),
    /// The 12 characters `token list` shows.
    Prefix(String),
}

/// Arguments that do not make a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("`{command}` needs a subcommand: {expected}")]
    MissingSubcommand {
        command: &'static str,
        expected: &'static str,
    },
    #[error("unknown subcommand `{command} {got}` (expected {expected})")]
    UnknownSubcommand {
        command: &'static str,
        got: String,
        expected: &'static str,
    },
    #[error("`{command}` takes no {got:?} (it takes {expected})")]
    Unexpected {
        command: &'static str,
        got: String,
        expected: &'static str,
    },
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("{0} is given twice")]
    Repeated(&'static str),
    #[error("`{command}` needs {what}")]
    Missing {
        command: &'static str,
        what: &'static str,
    },
    #[error("{what}: {message}")]
    Invalid { what: &'static str, message: String },
}

impl UsageError {
    fn invalid(what: &'static str) -> impl FnOnce(FieldError) -> Self {
        move |e| Self::Invalid {
            what,
            message: e.message,
        }
    }
}

/// The command `args` (without the program name) ask for.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Serve);
    };
    let simple = |c: Command, name: &'static str| match rest.first() {
        None => Ok(c),
        Some(got) => Err(UsageError::Unexpected {
            command: name,
            got: got.clone(),
            expected: "no arguments",
        }),
    };
    match command.as_str() {
        "serve" => simple(Command::Serve, "serve"),
        "migrate" => simple(Command::Migrate, "migrate"),
        "seed" => simple(Command::Seed, "seed"),
        "help" => Ok(Command::Help),
        "tenant" => parse_tenant(rest).map(Command::Admin),
        "token" => parse_token(rest).map(Command::Admin),
        other => Err(UsageError::UnknownCommand(other.to_owned())),
    }
}

const TENANT_SUBCOMMANDS: &str = "create or list";
const TOKEN_SUBCOMMANDS: &str = "create, list or revoke";

fn parse_tenant(args: &[String]) -> Result<AdminCommand, UsageError> {
    let (sub, rest) = args.split_first().ok_or(UsageError::MissingSubcommand {
        command: "tenant",
        expected: TENANT_SUBCOMMANDS,
    })?;
    match sub.as_str() {
        "create" => {
            let [name] = flags("tenant create", rest, &["--name"], "--name NAME")?.values;
            let name = name.ok_or(UsageError::Missing {
                command: "tenant create",
                what: "--name NAME",
            })?;
            let name = TenantName::parse("name", &name).map_err(UsageError::invalid("--name"))?;
            Ok(AdminCommand::TenantCreate { name })
        }
        "list" => {
            flags::<0>("tenant list", rest, &[], "no arguments")?;
            Ok(AdminCommand::TenantList)
        }
        other => Err(UsageError::UnknownSubcommand {
            command: "tenant",
            got: other.to_owned(),
            expected: TENANT_SUBCOMMANDS,
        }),
    }
}

fn parse_token(args: &[String]) -> Result<AdminCommand, UsageError> {
    let (sub, rest) = args.split_first().ok_or(UsageError::MissingSubcommand {
        command: "token",
        expected: TOKEN_SUBCOMMANDS,
    })?;
    match sub.as_str() {
        "create" => parse_token_create(rest),
        "list" => {
            let [tenant] = flags("token list", rest, &["--tenant"], "[--tenant ID]")?.values;
            let tenant = tenant.map(|t| parse_tenant_id(&t)).transpose()?;
            Ok(AdminCommand::TokenList { tenant })
        }
        "revoke" => match rest {
            [target] if !target.starts_with('-') => parse_token_ref(target),
            [] => Err(UsageError::Missing {
                command: "token revoke",
                what: "a token id or prefix",
            }),
            [_, got, ..] | [got] => Err(UsageError::Unexpected {
                command: "token revoke",
                got: got.clone(),
                expected: "one token id or prefix",
            }),
        },
        other => Err(UsageError::UnknownSubcommand {
            command: "token",
            got: other.to_owned(),
            expected: TOKEN_SUBCOMMANDS,
        }),
    }
}

fn parse_token_create(args: &[String]) -> Result<AdminCommand, UsageError> {
    let known = ["--tenant", "--label", "--expires-in"];
    let expected = "--tenant ID [--label LABEL] [--expires-in DURATION]";
    let [tenant, label, expires_in] = flags("token create", args, &known, expected)?.values;
    let tenant = tenant.ok_or(UsageError::Missing {
        command: "token create",
        what: "--tenant ID",
    })?;
    let tenant = parse_tenant_id(&tenant)?;
    let label = label.unwrap_or_else(|| CLI_TOKEN_LABEL.to_owned());
    let label = TokenLabel::parse("label", &label).map_err(UsageError::invalid("--label"))?;
    let expires_in = expires_in
        .map(|text| ExpiresIn::parse_human("expires-in", &text))
        .transpose()
        .map_err(UsageError::invalid("--expires-in"))?;
    Ok(AdminCommand::TokenCreate {
        tenant,
        request: TokenRequest { label, expires_in },
    })
}

fn parse_tenant_id(text: &str) -> Result<TenantId, UsageError> {
    text.parse().map_err(|e| UsageError::Invalid {
        what: "--tenant",
        message: format!("{e}"),
    })
}

fn parse_token_ref(text: &str) -> Result<AdminCommand, UsageError> {
    if let Ok(id) = text.parse::<TokenId>() {
        return Ok(AdminCommand::TokenRevoke(TokenRef::Id(id)));
    }
    if is_shown_prefix(text) {
        return Ok(AdminCommand::TokenRevoke(TokenRef::Prefix(text.to_owned())));
    }
    Err(UsageError::Invalid {
        what: "token revoke",
        message: format!(
            "{:?} is neither a token id (a UUID) nor a prefix as `token list` shows it (tsk_ and 8 characters)",
            // Whatever was pasted (a whole token, say) is not echoed whole.
            text.chars().take(tessera_domain::tokens::TOKEN_SHOWN_CHARS).collect::<String>()
        ),
    })
}

/// The values of the flags in `known` (each at most once, `--flag value` or
/// `--flag=value`), in `known`'s order; anything else is an error naming `expected`.
struct Flags<const N: usize> {
    values: [Option<String>; N],
}

fn flags<const N: usize>(
    command: &'static str,
    args: &[String],
    known: &[&'static str; N],
    expected: &'static str,
) -> Result<Flags<N>, UsageError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let Some(index) = known.iter().position(|k| *k == name) else {
            return Err(UsageError::Unexpected {
                command,
                got: arg.clone(),
                expected,
            });
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .ok_or(UsageError::MissingValue(known[index]))?,
        };
        if values[index].replace(value).is_some() {
            return Err(UsageError::Repeated(known[index]));
        }
    }
    Ok(Flags { values })
}

/// Runs a tenant or token command (the caller migrated first); returns what to print.
pub async fn run_admin(conn: &mut PgConnection, command: AdminCommand) -> anyhow::Result<String> {
    match command {
        AdminCommand::TenantCreate { name } => {
            let (tenant_id, issued) = tenants::create(conn, name.as_str()).await?;
            Ok(format!(
                "tenant:       {tenant_id} ({})\n{}",
                name.as_str(),
                issued_lines(&issued)
            ))
        }
        AdminCommand::TenantList => {
            let listed = tenants::list(conn, TENANTS_LISTED_MAX + 1).await?;
            Ok(tenant_table(&listed))
        }
        AdminCommand::TokenCreate { tenant, request } => {
            let issued = tokens::issue(conn, tenant, &request).await?;
            Ok(issued_lines(&issued))
        }
        AdminCommand::TokenList { tenant } => {
            let limit = match tenant {
                Some(_) => tokens::TOKENS_LISTED_MAX,
                None => ALL_TOKENS_LISTED_MAX,
            };
            let listed = tokens::list(conn, tenant, limit + 1).await?;
            Ok(token_table(&listed, limit, Utc::now()))
        }
        AdminCommand::TokenRevoke(target) => revoke(conn, target).await,
    }
}

async fn revoke(conn: &mut PgConnection, target: TokenRef) -> anyhow::Result<String> {
    let token_id = match target {
        TokenRef::Id(id) => id,
        TokenRef::Prefix(prefix) => match tokens::ids_with_prefix(conn, &prefix).await?[..] {
            [id] => id,
            [] => anyhow::bail!("no token has the prefix {prefix}"),
            _ => anyhow::bail!(
                "more than one token has the prefix {prefix}: revoke by id (see `token list`)"
            ),
        },
    };
    let info = tokens::revoke(conn, None, token_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no token {token_id}"))?;
    let when = info.revoked_at.map(time).unwrap_or_default();
    Ok(format!(
        "revoked:      {} ({}, {:?}) at {when}\n",
        info.token_id,
        info.prefix.as_deref().unwrap_or("-"),
        info.label
    ))
}

/// A new token: its id, label, expiry and the token itself, which is printed only here.
fn issued_lines(issued: &IssuedToken) -> String {
    let info = &issued.info;
    let expires = info.expires_at.map_or_else(|| "never".to_owned(), time);
    format!(
        "token id:     {}\nlabel:        {}\nexpires:      {expires}\nadmin token:  {}\n\
         (shown once: store it now; `tessera-ledger token list` shows only its prefix)\n",
        info.token_id, info.label, issued.token
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn optional_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), time)
}

fn tenant_table(listed: &[tenants::TenantSummary]) -> String {
    let mut out = format!(
        "{:<36}  {:<20}  {:>11}  NAME\n",
        "ID", "CREATED", "LIVE TOKENS"
    );
    let shown = listed.len().min(TENANTS_LISTED_MAX as usize);
    for tenant in &listed[..shown] {
        out += &format!(
            "{:<36}  {:<20}  {:>11}  {}\n",
            tenant.id,
            time(tenant.created_at),
            tenant.live_tokens,
            tenant.name
        );
    }
    if listed.len() > shown {
        out += &format!("(the first {shown} tenants; there are more)\n");
    }
    out
}

/// `listed` holds up to `limit + 1` tokens: one more says the listing was cut.
fn token_table(listed: &[TokenInfo], limit: i64, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:<36}  {:<36}  {:<12}  {:<7}  {:<20}  {:<20}  {:<20}  {:<20}  LABEL\n",
        "ID", "TENANT", "PREFIX", "STATE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"
    );
    let shown = listed
        .len()
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    for info in &listed[..shown] {
        let state = match info.state(now) {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        };
        out += &format!(
            "{:<36}  {:<36}  {:<12}  {state:<7}  {:<20}  {:<20}  {:<20}  {:<20}  {}\n",
            info.token_id,
            info.tenant_id,
            info.prefix.as_deref().unwrap_or("-"),
            time(info.created_at),
            optional_time(info.last_used_at),
            optional_time(info.expires_at),
            optional_time(info.revoked_at),
            info.label
        );
    }
    if listed.len() > shown {
        out += &format!("(the first {shown} tokens, live ones first; there are more)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    const TENANT: &str = "0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01";

    #[test]
    fn the_commands_parse() {
        assert_eq!(parse(&[]), Ok(Command::Serve));
        assert_eq!(parse(&args("seed")), Ok(Command::Seed));
        assert_eq!(parse(&args("token list --help")), Ok(Command::Help));
        let Ok(Command::Admin(AdminCommand::TokenCreate { tenant, request })) = parse(&args(
            &format!("token create --tenant={TENANT} --expires-in 12h --label ci"),
        )) else {
            panic!("token create parses");
        };
        assert_eq!(tenant.to_string(), TENANT);
        assert_eq!(request.label.as_str(), "ci");
        let hours = request.expires_in.map(|e| e.as_duration().num_hours());
        assert_eq!(hours, Some(12));
        let revoke = parse(&args("token revoke tsk_AbCd-_12"));
        assert_eq!(
            revoke,
            Ok(Command::Admin(AdminCommand::TokenRevoke(TokenRef::Prefix(
                "tsk_AbCd-_12".into()
            ))))
        );
        let name = vec![
            "tenant".into(),
            "create".into(),
            "--name".into(),
            "Acme Live".into(),
        ];
        assert!(matches!(
            parse(&name),
            Ok(Command::Admin(AdminCommand::TenantCreate { name })) if name.as_str() == "Acme Live"
        ));
    }

    #[test]
    fn bad_arguments_are_usage_errors_with_a_sentence() {
        for line in [
            "bogus",
            "seed now",
            "tenant",
            "tenant delete",
            "tenant create",
            "tenant create --name",
            "tenant list --all",
            "token",
            "token create",
            "token create --tenant nope",
            &format!("token create --tenant {TENANT} --tenant {TENANT}"),
            &format!("token create --tenant {TENANT} --expires-in 30"),
            &format!("token create --tenant {TENANT} --expires-in 0d"),
            &format!("token create --tenant {TENANT} --expires-in"),
            &format!("token create --tenant {TENANT} --label"),
            &format!("token create --tenant {TENANT} --colour red"),
            "token list --tenant",
            "token revoke",
            "token revoke tsk_short",
            "token revoke a b",
            "token revoke --all",
        ] {
            let error = parse(&args(line)).expect_err(line);
            assert!(!error.to_string().is_empty(), "{line}");
        }
        let error = parse(&args(&format!(
            "token create --tenant {TENANT} --expires-in 3w"
        )));
        let message = error.expect_err("3w").to_string();
        assert!(message.starts_with("--expires-in: expected"), "{message}");
    }

    #[test]
    fn a_pasted_token_is_not_echoed_whole() {
        let token = format!("tsk_{}", "x".repeat(43));
        let message = parse(&args(&format!("token revoke {token}")))
            .expect_err("a token is no id")
            .to_string();
        assert!(!message.contains(&token), "{message}");
    }
}
