//! The supervisor settings on the command line: one `--<setting> VALUE` flag per row of the
//! supervisor's settings table ([`ConfigBuilder::settings`], the one list of them) that has no
//! option of its own, named after the row with dashes for underscores (`--query-timeout`),
//! documented by the row, and validated by the table's own text setter; and `--set NAME=VALUE`
//! for any row.

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use dramatiq_sentinel_supervisor::{Config, ConfigBuilder, ConfigError, SettingInfo, SettingKind};

/// Rows of the table with an option of their own (`--sentinel`, `--service`, `--tls`).
const OWN: &[&str] = &["sentinels", "service_name", "tls"];

/// The id and name of `--set`.
const SET: &str = "set";

/// The supervisor settings a command line gives, `(field, value)` for [`ConfigBuilder::set`],
/// in command-line order (a later one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(pub Vec<(String, String)>);

impl Settings {
    /// Whether the command line sets `field`.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    /// `builder` with `defaults` (`(field, value)`) applied unless the command line sets the
    /// same field, then every setting of the command line.
    pub fn apply(
        &self,
        mut builder: ConfigBuilder,
        defaults: &[(&str, &str)],
    ) -> Result<ConfigBuilder, ConfigError> {
        for (field, value) in defaults {
            if !self.has(field) {
                builder = builder.set(field, value)?;
            }
        }
        for (field, value) in &self.0 {
            builder = builder.set(field, value)?;
        }
        Ok(builder)
    }
}

/// The rows that get a flag of their own: every row without an option of its own.
fn flagged() -> impl Iterator<Item = &'static SettingInfo> {
    ConfigBuilder::settings().filter(|info| !OWN.contains(&info.name()))
}

/// The flag of a row (without its `--`): its name, dashes for underscores.
pub(crate) fn flag(field: &str) -> String {
    field.replace('_', "-")
}

/// How the help shows a value of `kind`.
fn value_name(kind: SettingKind) -> &'static str {
    match kind {
        SettingKind::Duration => "SECONDS",
        SettingKind::OptionalDuration => "SECONDS|off",
        SettingKind::Bool => "true|false",
        SettingKind::Integer => "N",
        SettingKind::OptionalInteger => "N|off",
        SettingKind::Number => "NUMBER",
        SettingKind::Addresses => "HOST:PORT,...",
        SettingKind::NatRules => "HOST:PORT=HOST:PORT,...",
        SettingKind::PausePolicy => "exit:CODE|fail",
        _ => "VALUE",
    }
}

/// `value` checked by the table's text setter for `field` alone (the checks between fields
/// come when the configuration is built); the problem names the field.
fn check(field: &str, value: &str) -> Result<(), String> {
    Config::builder().set(field, value).map(drop).map_err(|e| {
        if e.is_unknown_setting() {
            format!("unknown setting `{field}`")
        } else {
            format!("{} (setting `{}`)", e.problem(), e.field())
        }
    })
}

/// `NAME=VALUE` of `--set`: a row of the table (dashes or underscores) and a value it accepts.
fn name_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let field = name.trim().replace('-', "_");
    check(&field, value)?;
    Ok((field, value.to_owned()))
}

/// The flag of one row: its summary for `-h`, its whole documentation, default and bounds for
/// `--help`; the value checked by the row's setter.
fn arg(info: &'static SettingInfo) -> Arg {
    let field = info.name();
    Arg::new(field)
        .long(flag(field))
        .value_name(value_name(info.kind()))
        .action(ArgAction::Append)
        .allow_negative_numbers(true)
        .value_parser(move |v: &str| check(field, v).map(|()| v.to_owned()))
        .help(info.summary())
        .long_help(format!(
            "{}\n[default: {}] [accepts: {}]",
            info.doc(),
            if info.default().is_empty() {
                "none"
            } else {
                info.default()
            },
            info.bounds()
        ))
        .hide_short_help(true)
        .help_heading("Supervisor settings")
}

impl clap::Args for Settings {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(SET)
                .long(SET)
                .value_name("NAME=VALUE")
                .action(ArgAction::Append)
                .value_parser(name_value)
                .help(
                    "Any supervisor setting; each also has a flag of its own, \
                     --NAME VALUE (dashes for underscores), listed by --help",
                )
                .help_heading("Supervisor settings"),
        )
        .args(flagged().map(arg))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// A setting read back with another type than its parser's (a bug of this file).
fn internal(e: clap::parser::MatchesError) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::InvalidValue, e)
}

impl FromArgMatches for Settings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = Self::default();
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut given: Vec<(usize, (String, String))> = Vec::new();
        for info in flagged() {
            let field = info.name();
            if let (Some(at), Some(values)) = (
                matches.indices_of(field),
                matches.try_get_many::<String>(field).map_err(internal)?,
            ) {
                given.extend(at.zip(values.map(|v| (field.to_owned(), v.clone()))));
            }
        }
        if let (Some(at), Some(values)) = (
            matches.indices_of(SET),
            matches
                .try_get_many::<(String, String)>(SET)
                .map_err(internal)?,
        ) {
            given.extend(at.zip(values.cloned()));
        }
        given.sort_by_key(|(at, _)| *at);
        self.0.extend(given.into_iter().map(|(_, setting)| setting));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Result<Settings, String> {
        Line::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|l| l.settings)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_and_set_keep_the_command_line_order() {
        let s = parse(&[
            "--query-timeout",
            "2",
            "--set",
            "connect-timeout=3",
            "--query-timeout=4",
            "--set=service_name=svc",
        ])
        .expect("valid");
        assert_eq!(
            s.0,
            [
                ("query_timeout".into(), "2".into()),
                ("connect_timeout".into(), "3".into()),
                ("query_timeout".into(), "4".into()),
                ("service_name".into(), "svc".into()),
            ]
        );
        let config = s
            .apply(
                Config::builder().sentinels(["a:1"]),
                &[("query_timeout", "9")],
            )
            .and_then(ConfigBuilder::build)
            .expect("a valid configuration");
        assert_eq!(config.query_timeout().as_secs(), 4);
        assert_eq!(config.service_name(), "svc");
    }

    #[test]
    fn every_row_without_an_option_of_its_own_is_a_flag_and_nothing_else_is() {
        let mut rows = 0;
        for info in flagged() {
            let flag = format!("--{}", flag(info.name()));
            let s = parse(&[&flag, info.default()]).unwrap_or_else(|e| panic!("{flag}: {e}"));
            assert_eq!(s.0, [(info.name().to_owned(), info.default().to_owned())]);
            rows += 1;
        }
        assert_eq!(rows, ConfigBuilder::settings().count() - OWN.len());
        for own in OWN {
            assert!(ConfigBuilder::setting(own).is_some(), "{own} is a row");
            let e = parse(&[&format!("--{}", flag(own)), "x"]).expect_err("no flag");
            assert!(e.contains("unexpected argument"), "{own}: {e}");
        }
        let e = parse(&["--sentinel-auth", "x"]).expect_err("not a row");
        assert!(e.contains("unexpected argument '--sentinel-auth'"), "{e}");
    }

    #[test]
    fn values_are_checked_by_the_table_naming_the_flag_and_the_field() {
        let e = parse(&["--query-timeout", "-1"]).expect_err("negative");
        assert!(
            e.contains("'--query-timeout <SECONDS>'") && e.contains("(setting `query_timeout`)"),
            "{e}"
        );
        let e = parse(&["--early-fencing", "maybe"]).expect_err("not a boolean");
        assert!(e.contains("--early-fencing"), "{e}");
        let e = parse(&["--set", "bogus=1"]).expect_err("unknown");
        assert!(e.contains("unknown setting `bogus`"), "{e}");
        let e = parse(&["--set", "query-timeout"]).expect_err("no value");
        assert!(e.contains("is not NAME=VALUE"), "{e}");
    }

    #[test]
    fn the_help_comes_from_the_table() {
        let help = <Line as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        let info = ConfigBuilder::setting("fence_timeout").expect("a row");
        assert!(help.contains("--fence-timeout <SECONDS>"), "{help}");
        assert!(help.contains(&info.summary()), "{help}");
        assert!(help.contains(info.bounds()), "{help}");
    }
}
