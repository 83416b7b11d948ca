//! What a setting is, for the tools built around the configuration: its name, the kind of
//! value it takes as text, its default and bounds as text, and its documentation. The core's
//! [`SETTINGS`](crate::SETTINGS) lists every setting of [`ConfigBuilder`](crate::ConfigBuilder)
//! this way (the runtimes add their own I/O settings in the same form); the builder's text
//! setter, the runtimes' builders, the Python package and the command line read it.

/// The kind of value a setting takes, as [`ConfigBuilder::set`](crate::ConfigBuilder::set)
/// reads it from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SettingKind {
    /// Seconds (`0.5`).
    Duration,
    /// Seconds, or `off`/`none` for none.
    OptionalDuration,
    /// `true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`.
    Bool,
    /// A whole number.
    Integer,
    /// A whole number, or `off`/`none` for none.
    OptionalInteger,
    /// A finite number (`2.0`).
    Number,
    /// Free text.
    Text,
    /// A comma-separated list of `host:port` addresses.
    Addresses,
    /// NAT rules, `announced=reachable,...`.
    NatRules,
    /// `exit:<code>` or `fail`.
    PausePolicy,
}

impl SettingKind {
    /// The kind's name, as other languages see it: `duration`, `optional_duration`, `bool`,
    /// `integer`, `optional_integer`, `number`, `text`, `addresses`, `nat_rules`,
    /// `pause_policy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SettingKind::Duration => "duration",
            SettingKind::OptionalDuration => "optional_duration",
            SettingKind::Bool => "bool",
            SettingKind::Integer => "integer",
            SettingKind::OptionalInteger => "optional_integer",
            SettingKind::Number => "number",
            SettingKind::Text => "text",
            SettingKind::Addresses => "addresses",
            SettingKind::NatRules => "nat_rules",
            SettingKind::PausePolicy => "pause_policy",
        }
    }
}

/// One setting: one row of the settings table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingInfo {
    name: &'static str,
    kind: SettingKind,
    default: &'static str,
    bounds: &'static str,
    doc: &'static str,
}

impl SettingInfo {
    /// A row: the setting's `name`, its `kind`, its `default` as text `set()` accepts, its
    /// `bounds` for people, and its documentation (rustdoc lines, joined by newlines).
    pub const fn new(
        name: &'static str,
        kind: SettingKind,
        default: &'static str,
        bounds: &'static str,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            default,
            bounds,
            doc,
        }
    }

    /// The setting's name, as `set()` and the error's field name it (`query_timeout`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The kind of value it takes.
    pub const fn kind(&self) -> SettingKind {
        self.kind
    }

    /// The default, as text `set()` accepts (`0.5`, `off`, `exit:69`).
    pub const fn default(&self) -> &'static str {
        self.default
    }

    /// The values it accepts, for people (`above zero, at most 365 days`).
    pub const fn bounds(&self) -> &'static str {
        self.bounds
    }

    /// Its documentation, the same text as the setter's rustdoc, on one line.
    pub fn doc(&self) -> String {
        self.doc
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The first sentence of [`doc`](Self::doc).
    pub fn summary(&self) -> String {
        let doc = self.doc();
        match doc.find(". ") {
            Some(end) => doc[..=end].to_owned(),
            None => doc,
        }
    }

    /// The row of `table` named `name`.
    pub fn find<'t>(table: &'t [SettingInfo], name: &str) -> Option<&'t SettingInfo> {
        table.iter().find(|s| s.name == name)
    }
}
