//! Condition operators, compiled at load time so a typo fails the config, not a request.
//!
//! Semantics follow IAM: several values for one key are ORed (ANDed for negated operators,
//! which are the negation of the positive one); several keys and operators are ANDed by the
//! caller. A key missing from the request makes a positive operator false and a negated one
//! true, unless `...IfExists` (then true) or a `ForAllValues:`/`ForAnyValue:` qualifier.

use std::net::IpAddr;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::pattern::Pattern;
use super::{lookup, Context};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// How the request's value compares to the policy's: request OP policy.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Strings {
        patterns: Vec<Pattern>,
        fold_case: bool,
    },
    Numbers(Cmp, Vec<f64>),
    Dates(Cmp, Vec<OffsetDateTime>),
    Bools(Vec<bool>),
    Cidrs(Vec<Cidr>),
    /// `Null`: true when the key's absence equals this.
    Null(bool),
}

/// One `"Operator": { "key": values }` entry of a Condition block.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Condition {
    key: String,
    qualifier: Qualifier,
    if_exists: bool,
    negated: bool,
    values: Values,
}

impl Condition {
    /// `variables`: whether `${...}` in string values is a policy variable (Version 2012-10-17).
    pub(super) fn compile(operator: &str, key: &str, values: &[String], variables: bool) -> Result<Self, String> {
        if key.is_empty() {
            return Err(format!("{operator}: empty condition key"));
        }
        if values.is_empty() {
            return Err(format!("{operator}: key {key:?} has no values"));
        }
        let (qualifier, op) = if let Some(op) = operator.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, op)
        } else if let Some(op) = operator.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, op)
        } else {
            (Qualifier::Single, operator)
        };
        let (if_exists, op) = match op.strip_suffix("IfExists") {
            Some(op) => (true, op),
            None => (false, op),
        };
        let strings = |wildcards, fold_case| -> Result<Values, String> {
            let patterns =
                values.iter().map(|v| Pattern::compile(v, wildcards, variables)).collect::<Result<_, _>>()?;
            Ok(Values::Strings { patterns, fold_case })
        };
        let numbers = |cmp| -> Result<Values, String> { Ok(Values::Numbers(cmp, parse_all(values, parse_number)?)) };
        let dates = |cmp| -> Result<Values, String> { Ok(Values::Dates(cmp, parse_all(values, parse_date)?)) };
        let (negated, values) = match op {
            "StringEquals" => (false, strings(false, false)?),
            "StringNotEquals" => (true, strings(false, false)?),
            "StringEqualsIgnoreCase" => (false, strings(false, true)?),
            "StringNotEqualsIgnoreCase" => (true, strings(false, true)?),
            "StringLike" | "ArnEquals" | "ArnLike" => (false, strings(true, false)?),
            "StringNotLike" | "ArnNotEquals" | "ArnNotLike" => (true, strings(true, false)?),
            "NumericEquals" => (false, numbers(Cmp::Eq)?),
            "NumericNotEquals" => (true, numbers(Cmp::Eq)?),
            "NumericLessThan" => (false, numbers(Cmp::Lt)?),
            "NumericLessThanEquals" => (false, numbers(Cmp::Le)?),
            "NumericGreaterThan" => (false, numbers(Cmp::Gt)?),
            "NumericGreaterThanEquals" => (false, numbers(Cmp::Ge)?),
            "DateEquals" => (false, dates(Cmp::Eq)?),
            "DateNotEquals" => (true, dates(Cmp::Eq)?),
            "DateLessThan" => (false, dates(Cmp::Lt)?),
            "DateLessThanEquals" => (false, dates(Cmp::Le)?),
            "DateGreaterThan" => (false, dates(Cmp::Gt)?),
            "DateGreaterThanEquals" => (false, dates(Cmp::Ge)?),
            "Bool" => (false, Values::Bools(parse_all(values, parse_bool)?)),
            "IpAddress" => (false, Values::Cidrs(parse_all(values, Cidr::parse)?)),
            "NotIpAddress" => (true, Values::Cidrs(parse_all(values, Cidr::parse)?)),
            "Null" if !if_exists && qualifier == Qualifier::Single => match values {
                [one] => (false, Values::Null(parse_bool(one)?)),
                _ => return Err(format!("Null on {key:?} takes exactly one value")),
            },
            _ => return Err(format!("unknown condition operator {operator:?}")),
        };
        Ok(Self { key: key.to_owned(), qualifier, if_exists, negated, values })
    }

    pub(super) fn holds(&self, context: &Context) -> bool {
        let present = lookup(context, &self.key).filter(|v| !v.is_empty());
        if let Values::Null(want_absent) = self.values {
            return present.is_none() == want_absent;
        }
        let Some(values) = present else {
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::Single => self.negated,
                };
        };
        let each = |v: &String| self.matches(v, context) != self.negated;
        match self.qualifier {
            Qualifier::ForAnyValue => values.iter().any(each),
            Qualifier::ForAllValues => values.iter().all(each),
            // A negated operator is "no request value matches any policy value".
            Qualifier::Single if self.negated => values.iter().all(each),
            Qualifier::Single => values.iter().any(each),
        }
    }

    /// Whether one request value matches any policy value (before negation). A request value
    /// of the wrong type (a non-number for Numeric...) matches nothing.
    fn matches(&self, value: &str, context: &Context) -> bool {
        match &self.values {
            Values::Strings { patterns, fold_case } => patterns.iter().any(|p| p.matches(value, context, *fold_case)),
            Values::Numbers(cmp, policy) => {
                parse_number(value).is_ok_and(|v| policy.iter().any(|p| compare(*cmp, v, *p)))
            }
            Values::Dates(cmp, policy) => parse_date(value).is_ok_and(|v| policy.iter().any(|p| compare(*cmp, v, *p))),
            Values::Bools(policy) => parse_bool(value).is_ok_and(|v| policy.contains(&v)),
            Values::Cidrs(policy) => {
                value.trim().parse::<IpAddr>().is_ok_and(|ip| policy.iter().any(|c| c.contains(ip)))
            }
            Values::Null(_) => false,
        }
    }
}

fn compare<T: PartialOrd>(cmp: Cmp, request: T, policy: T) -> bool {
    match cmp {
        Cmp::Eq => request == policy,
        Cmp::Lt => request < policy,
        Cmp::Le => request <= policy,
        Cmp::Gt => request > policy,
        Cmp::Ge => request >= policy,
    }
}

fn parse_all<T>(values: &[String], parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    values.iter().map(|v| parse(v)).collect()
}

fn parse_number(text: &str) -> Result<f64, String> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| format!("{text:?} is not a number"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

/// ISO 8601 as IAM takes it: RFC 3339 date-time, a bare date (midnight UTC), or epoch seconds.
fn parse_date(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a date (use e.g. 2030-01-31T00:00:00Z)");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = text.parse().map_err(|_| bad())?;
        return OffsetDateTime::from_unix_timestamp(secs).map_err(|_| bad());
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]")).map(|d| d.midnight().assume_utc()).map_err(|_| bad())
}

/// An address block, parsed by hand because no CIDR crate is available.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cidr {
    addr: IpAddr,
    prefix: u32,
}

impl Cidr {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid CIDR {text:?}: expected an address with an optional /prefix, \
                 e.g. 203.0.113.0/24 or 2001:db8::/32"
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u32>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Self { addr, prefix })
    }

    /// A v4 client reaching a dual-stack listener shows up as `::ffff:a.b.c.d`; canonicalizing
    /// lets it match the v4 blocks an operator writes.
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
