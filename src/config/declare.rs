//! How a setting is declared: once, in a [`settings!`] list that expands to its flag, its
//! environment variable, its TOML key, its resolved field and the merge of the three.
//!
//! A key is written like a clap field, with its default:
//!
//! ```text
//! /// Upstream TCP+TLS connect timeout in seconds [default: 5].
//! #[arg(value_name = "SECONDS")]
//! upstream_connect_timeout: Option<u64> = 5,
//! ```
//!
//! That is the flag `--upstream-connect-timeout` (the doc comment is its help), the variable
//! `S3GATE_UPSTREAM_CONNECT_TIMEOUT`, the TOML key `upstream_connect_timeout`, and a resolved
//! `u64`: the flag's value, else the variable's, else the file's, else 5. A key without a
//! default resolves to an `Option` (a list: to an empty one). `Vec<T>` keys are repeatable
//! flags, comma-separated variables and TOML arrays; an empty list counts as not given on the
//! command line, as given in the file (`allow_http_port = []` turns plain HTTP off). Keys of a
//! table name their TOML key after `as` (`forward_allow as allow` is `[forward] allow`), and
//! `#[toml(T)]` reads a key from the file as `T` instead (port numbers, not strings).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// The environment, as a map: `main` reads the process's once, tests pass their own.
pub type Env = HashMap<String, String>;

/// One declared key, for what reads the list rather than the values (tests, docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The flag's field, `forward_allow`.
    pub field: &'static str,
    /// The TOML table the key is in: `""` for the top level, `"forward"`.
    pub table: &'static str,
    /// The key in that table, `allow`.
    pub toml: &'static str,
}

impl Key {
    /// The flag without its dashes, as error messages name it: `forward-allow`.
    pub fn name(&self) -> String {
        self.field.replace('_', "-")
    }

    pub fn flag(&self) -> String {
        format!("--{}", self.name())
    }

    pub fn env(&self) -> String {
        env_var(self.field)
    }

    /// Where the file sets it: `audit_log`, `forward.allow`.
    pub fn toml_path(&self) -> String {
        if self.table.is_empty() {
            self.toml.to_owned()
        } else {
            format!("{}.{}", self.table, self.toml)
        }
    }
}

/// `S3GATE_` and the flag's field in upper case.
pub fn env_var(field: &str) -> String {
    format!("S3GATE_{}", field.to_ascii_uppercase())
}

/// A value as an environment variable writes it.
pub trait FromEnv: Sized {
    /// `text` is the value of `var`, which error messages name.
    fn from_env(var: &str, text: &str) -> Result<Self, ConfigError>;
}

impl FromEnv for String {
    fn from_env(_var: &str, text: &str) -> Result<Self, ConfigError> {
        Ok(text.to_owned())
    }
}

impl FromEnv for PathBuf {
    fn from_env(_var: &str, text: &str) -> Result<Self, ConfigError> {
        Ok(PathBuf::from(text))
    }
}

impl FromEnv for u64 {
    fn from_env(var: &str, text: &str) -> Result<Self, ConfigError> {
        text.parse().map_err(|_| invalid(format!("{var}: not a number: {text:?}")))
    }
}

impl FromEnv for bool {
    fn from_env(var: &str, text: &str) -> Result<Self, ConfigError> {
        match text {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(invalid(format!("{var}: expected true or false, got {other:?}"))),
        }
    }
}

/// The two shapes of a flag: `Option<T>`, given once, and `Vec<T>`, repeatable.
pub trait Flag: Sized {
    /// What one source gives: a `T`, or a whole list.
    type Value;
    /// The command line's value; an empty list was not given.
    fn given(&self) -> Option<Self::Value>;
    /// The value of `var` in `env`; an empty variable is not set, a list is comma-separated.
    fn read_env(env: &Env, var: &str) -> Result<Option<Self::Value>, ConfigError>;
    /// What a key without a default resolves to.
    fn unset(value: Option<Self::Value>) -> Self;
}

fn env_text<'a>(env: &'a Env, var: &str) -> Option<&'a str> {
    env.get(var).map(String::as_str).filter(|v| !v.is_empty())
}

impl<T: FromEnv + Clone> Flag for Option<T> {
    type Value = T;

    fn given(&self) -> Option<T> {
        self.clone()
    }

    fn read_env(env: &Env, var: &str) -> Result<Option<T>, ConfigError> {
        env_text(env, var).map(|text| T::from_env(var, text)).transpose()
    }

    fn unset(value: Option<T>) -> Self {
        value
    }
}

impl<T: FromEnv + Clone> Flag for Vec<T> {
    type Value = Vec<T>;

    fn given(&self) -> Option<Vec<T>> {
        (!self.is_empty()).then(|| self.clone())
    }

    fn read_env(env: &Env, var: &str) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(text) = env_text(env, var) else { return Ok(None) };
        let items = text.split(',').map(str::trim).filter(|s| !s.is_empty());
        items.map(|item| T::from_env(var, item)).collect::<Result<Vec<T>, _>>().map(Some)
    }

    fn unset(value: Option<Vec<T>>) -> Self {
        value.unwrap_or_default()
    }
}

/// Port numbers in the file (`allow_port = [443]`), where the command line and environment
/// write strings so that they can say `none`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Ports(pub Vec<u16>);

impl From<Ports> for Vec<String> {
    fn from(ports: Ports) -> Self {
        ports.0.iter().map(u16::to_string).collect()
    }
}

/// A duration in seconds that may have a fraction (`--drain-delay 0.5`): a load balancer's
/// health-check interval is often under a second, and tests wait for less than that.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(try_from = "SecondsInFile")]
pub struct Seconds(pub f64);

/// The TOML file may write `5` or `0.5`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecondsInFile {
    Whole(u64),
    Fraction(f64),
}

impl TryFrom<SecondsInFile> for Seconds {
    type Error = String;

    fn try_from(v: SecondsInFile) -> Result<Self, String> {
        match v {
            SecondsInFile::Whole(n) => Ok(Seconds(n as f64)),
            SecondsInFile::Fraction(f) => Seconds::checked(f).ok_or_else(|| format!("not a number of seconds: {f}")),
        }
    }
}

impl Seconds {
    /// The most any of these settings takes: an hour. Longer is a typo, not a plan.
    pub const MAX: f64 = 3600.0;

    fn checked(f: f64) -> Option<Seconds> {
        (f.is_finite() && (0.0..=Self::MAX).contains(&f)).then_some(Seconds(f))
    }

    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0.clamp(0.0, Self::MAX))
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let f: f64 = text.trim().parse().map_err(|_| format!("not a number of seconds: {text:?}"))?;
        Seconds::checked(f).ok_or_else(|| format!("seconds out of range (0 to {}): {text:?}", Self::MAX))
    }
}

impl FromEnv for Seconds {
    fn from_env(var: &str, text: &str) -> Result<Self, ConfigError> {
        text.parse().map_err(|e| invalid(format!("{var}: {e}")))
    }
}

/// Declares a list of keys; see the module documentation. `keys { ... }` for top-level keys,
/// or `keys in "table" { field as key: ... }`, then the three structs written around them,
/// with their attributes and extra fields: the flags (where `..` marks the keys' place), the
/// TOML file and the resolved settings. Also writes `$Res::merge` and the list `KEYS`.
macro_rules! settings {
    (
        keys {
            $(
                $(#[doc = $doc:literal])*
                $(#[arg($($arg:tt)*)])*
                $(#[toml($toml:ty)])?
                $field:ident: $wrap:ident<$inner:ty> $(= $default:expr)?,
            )*
        }
        $($structs:tt)*
    ) => {
        $crate::config::declare::settings! { @emit "" [$(
            [$field $field] [$($doc)*] [$([$($arg)*])*] [$($toml)?] $wrap [$inner] [$($default)?]
        )*] $($structs)* }
    };
    (
        keys in $table:literal {
            $(
                $(#[doc = $doc:literal])*
                $(#[arg($($arg:tt)*)])*
                $(#[toml($toml:ty)])?
                $field:ident as $key:ident: $wrap:ident<$inner:ty> $(= $default:expr)?,
            )*
        }
        $($structs:tt)*
    ) => {
        $crate::config::declare::settings! { @emit $table [$(
            [$field $key] [$($doc)*] [$([$($arg)*])*] [$($toml)?] $wrap [$inner] [$($default)?]
        )*] $($structs)* }
    };
    (
        @emit $table:literal [$(
            [$field:ident $key:ident] [$($doc:literal)*] [$([$($arg:tt)*])*] [$($toml:ty)?]
            $wrap:ident [$inner:ty] [$($default:expr)?]
        )*]
        $(#[$cli_meta:meta])*
        pub struct $Cli:ident {
            $( $(#[$cb_meta:meta])* pub $cb:ident: $cb_ty:ty, )*
            ..
            $( $(#[$ca_meta:meta])* pub $ca:ident: $ca_ty:ty, )*
        }
        $(#[$file_meta:meta])*
        pub struct $File:ident { $( $(#[$fx_meta:meta])* pub $fx:ident: $fx_ty:ty, )* }
        $(#[$res_meta:meta])*
        pub struct $Res:ident { $( $(#[$rx_meta:meta])* pub $rx:ident: $rx_ty:ty, )* }
    ) => {
        $(#[$cli_meta])*
        pub struct $Cli {
            $( $(#[$cb_meta])* pub $cb: $cb_ty, )*
            $(
                $(#[doc = $doc])*
                #[arg(long)]
                $(#[arg($($arg)*)])*
                pub $field: $wrap<$inner>,
            )*
            $( $(#[$ca_meta])* pub $ca: $ca_ty, )*
        }

        $(#[$file_meta])*
        pub struct $File {
            $(
                $(#[doc = $doc])*
                pub $key: Option<$crate::config::declare::toml_type!($wrap [$inner] [$($toml)?])>,
            )*
            $( $(#[$fx_meta])* pub $fx: $fx_ty, )*
        }

        $(#[$res_meta])*
        pub struct $Res {
            $(
                $(#[doc = $doc])*
                pub $key: $crate::config::declare::resolved_type!($wrap [$inner] [$($default)?]),
            )*
            $( $(#[$rx_meta])* pub $rx: $rx_ty, )*
        }

        /// Every key declared here, in order.
        pub const KEYS: &[$crate::config::declare::Key] = &[$(
            $crate::config::declare::Key { field: stringify!($field), table: $table, toml: stringify!($key) },
        )*];

        impl $Res {
            /// Each key from the first source that has it: flag, environment, file, default.
            /// Takes the keys out of `file`, leaving its tables, and also returns the keys that
            /// some source gave. The extra fields are left to the caller.
            #[allow(clippy::needless_update)]
            pub(super) fn merge(
                args: &$Cli,
                env: &$crate::config::declare::Env,
                file: &mut $File,
            ) -> Result<(Self, Vec<&'static $crate::config::declare::Key>), $crate::config::ConfigError> {
                use $crate::config::declare::{env_var, Flag};
                $(
                    let from_env = <$wrap<$inner> as Flag>::read_env(env, &env_var(stringify!($field)))?;
                    let $field = args.$field.given().or(from_env).or(file.$key.take().map(Into::into));
                )*
                let given = [$($field.is_some()),*];
                let given = KEYS.iter().zip(given).filter(|(_, set)| *set).map(|(key, _)| key).collect();
                let resolved = Self {
                    $( $key: $crate::config::declare::finish!($wrap [$inner] $field [$($default)?]), )*
                    ..Self::default()
                };
                Ok((resolved, given))
            }
        }
    };
}

/// A key's type in the TOML file: its value's, unless `#[toml(T)]` says otherwise.
macro_rules! toml_type {
    (Option [$inner:ty] []) => { $inner };
    (Vec [$inner:ty] []) => { Vec<$inner> };
    ($wrap:ident [$inner:ty] [$toml:ty]) => { $toml };
}

/// A key's resolved type: its value's when it has a default, else the flag's own.
macro_rules! resolved_type {
    (Option [$inner:ty] [$default:expr]) => { $inner };
    (Vec [$inner:ty] [$default:expr]) => { Vec<$inner> };
    ($wrap:ident [$inner:ty] []) => { $wrap<$inner> };
}

/// A key's resolved value from what the sources gave.
macro_rules! finish {
    ($wrap:ident [$inner:ty] $value:ident [$default:expr]) => {
        $value.unwrap_or_else(|| $default)
    };
    ($wrap:ident [$inner:ty] $value:ident []) => {
        <$wrap<$inner> as $crate::config::declare::Flag>::unset($value)
    };
}

pub(crate) use {finish, resolved_type, settings, toml_type};
