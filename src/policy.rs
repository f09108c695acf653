//! Per-credential access policies in the IAM policy language, and one pure `authorize`.
//!
//! Operators already know how to write IAM policies, so credentials carry one instead of a
//! home-made rule format. A policy is parsed and validated once when the config loads (a typo
//! in an operator, an Effect or a CIDR is a config error, not a silent deny at request time);
//! `authorize` is then a pure function of the policy and the request, easy to test as a table.
//!
//! Evaluation is IAM's: a matching Deny wins, else a matching Allow, else an implicit deny.

use std::collections::HashMap;

use serde::Deserialize;

mod condition;
mod document;
mod pattern;
mod request;
#[cfg(test)]
mod tests;

use condition::Condition;
use pattern::Pattern;

/// Request context: condition key -> values. Keys are matched case-insensitively, as in IAM.
pub type Context = HashMap<String, Vec<String>>;

/// A validated policy document. Deserializes from JSON (or a TOML table of the same shape),
/// so a config loader gets validation errors through serde.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// Action/NotAction or Resource/NotResource: `negated` is the `Not` form.
#[derive(Debug, Clone, PartialEq)]
struct Targets {
    patterns: Vec<Pattern>,
    negated: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    effect: Effect,
    actions: Targets,
    resources: Targets,
    conditions: Vec<Condition>,
}

/// Why a policy document was refused; the message names the statement and the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("policy {at}: {reason}")]
    Invalid { at: String, reason: String },
}

impl Policy {
    /// Parse and validate a JSON policy document.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        Self::try_from(value)
    }
}

impl TryFrom<serde_json::Value> for Policy {
    type Error = PolicyError;

    fn try_from(value: serde_json::Value) -> Result<Self, PolicyError> {
        document::compile(value)
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, PolicyError> {
        Self::from_json(text)
    }
}

/// The outcome of evaluating a policy; only `Allow` lets a request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// What is being asked: the IAM action, the resource ARN and the condition context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRequest<'a> {
    /// e.g. "s3:GetObject".
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`; `arn:aws:s3:::*` for
    /// ListAllMyBuckets, which matches both `"*"` and `"arn:aws:s3:::*"` in a policy.
    pub resource_arn: String,
    pub context: Context,
}

impl AuthzRequest<'_> {
    /// Add a context value (e.g. `aws:username`); the key is stored lower-case.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.context.entry(key.to_ascii_lowercase()).or_default().push(value.into());
    }
}

/// IAM evaluation: any matching Deny wins, then any matching Allow, else an implicit deny.
pub fn authorize(policy: &Policy, req: &AuthzRequest) -> Decision {
    let mut allowed = false;
    for statement in &policy.statements {
        if statement.applies(req) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

impl Statement {
    /// Action names are case-insensitive in IAM; ARNs are not.
    fn applies(&self, req: &AuthzRequest) -> bool {
        self.actions.matches(req.action, &req.context, true)
            && self.resources.matches(&req.resource_arn, &req.context, false)
            && self.conditions.iter().all(|c| c.holds(&req.context))
    }
}

impl Targets {
    fn matches(&self, value: &str, context: &Context, fold_case: bool) -> bool {
        self.patterns.iter().any(|p| p.matches(value, context, fold_case)) != self.negated
    }
}

/// Find a context key case-insensitively: the exact (lower-case) key first, as `from_s3` and
/// `insert` store them, then any spelling a caller used.
fn lookup<'c>(context: &'c Context, key: &str) -> Option<&'c [String]> {
    let lower = key.to_ascii_lowercase();
    context
        .get(&lower)
        .or_else(|| context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
        .map(Vec::as_slice)
}
