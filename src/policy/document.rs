//! The policy document as written, and its validation into a compiled `Policy`.
//!
//! Unknown fields are refused (`"Actions"` is a typo, not an ignorable extension), and every
//! error names the statement, by index and Sid, so the config loader can point at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Condition, Effect, Pattern, Policy, PolicyError, Statement, Targets};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "Version")]
    version: Option<String>,
    #[serde(rename = "Id")]
    _id: Option<String>,
    #[serde(rename = "Statement")]
    statement: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawStatement {
    /// Read before deserializing, to label errors; declared so that it is not unknown.
    #[serde(rename = "Sid")]
    _sid: Option<String>,
    effect: String,
    action: Option<Value>,
    not_action: Option<Value>,
    resource: Option<Value>,
    not_resource: Option<Value>,
    principal: Option<Value>,
    not_principal: Option<Value>,
    condition: Option<BTreeMap<String, BTreeMap<String, Value>>>,
}

pub(super) fn compile(value: Value) -> Result<Policy, PolicyError> {
    let invalid = |reason: String| PolicyError::Invalid { at: "document".to_owned(), reason };
    let doc: Document = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    // IAM only expands `${...}` under 2012-10-17; an older or missing Version means it literally.
    let variables = match doc.version.as_deref() {
        Some("2012-10-17") => true,
        None | Some("2008-10-17") => false,
        Some(other) => return Err(invalid(format!("unknown Version {other:?} (use \"2012-10-17\")"))),
    };
    let items = match doc.statement {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(invalid("Statement must be an object or an array".to_owned())),
    };
    if items.is_empty() {
        return Err(invalid("Statement is empty".to_owned()));
    }
    let statements =
        items.into_iter().enumerate().map(|(i, item)| statement(i + 1, item, variables)).collect::<Result<_, _>>()?;
    Ok(Policy { statements })
}

fn statement(index: usize, value: Value, variables: bool) -> Result<Statement, PolicyError> {
    let at = match value.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {index} (Sid {sid:?})"),
        None => format!("statement {index}"),
    };
    let fail = |reason: String| PolicyError::Invalid { at: at.clone(), reason };
    let raw: RawStatement = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
    let effect = match raw.effect.as_str() {
        "Allow" => Effect::Allow,
        "Deny" => Effect::Deny,
        other => return Err(fail(format!("unknown Effect {other:?} (expected \"Allow\" or \"Deny\")"))),
    };
    if raw.principal.is_some() || raw.not_principal.is_some() {
        return Err(fail(
            "Principal is not allowed: a credential's policy always applies to that credential".to_owned(),
        ));
    }
    let actions = targets("Action", raw.action, raw.not_action, check_action, false);
    let resources = targets("Resource", raw.resource, raw.not_resource, check_resource, variables);
    let conditions = conditions(raw.condition.unwrap_or_default(), variables);
    Ok(Statement {
        effect,
        actions: actions.map_err(fail)?,
        resources: resources.map_err(fail)?,
        conditions: conditions.map_err(fail)?,
    })
}

/// Action/NotAction or Resource/NotResource: exactly one of the pair, one string or several.
fn targets(
    name: &str,
    plain: Option<Value>,
    not: Option<Value>,
    check: fn(&str) -> Result<(), String>,
    variables: bool,
) -> Result<Targets, String> {
    let (value, negated) = match (plain, not) {
        (Some(value), None) => (value, false),
        (None, Some(value)) => (value, true),
        (Some(_), Some(_)) => return Err(format!("has both {name} and Not{name}")),
        (None, None) => return Err(format!("needs {name} or Not{name}")),
    };
    let items = list(&value, false).ok_or_else(|| format!("{name} must be a string or an array of strings"))?;
    if items.is_empty() {
        return Err(format!("{name} is empty"));
    }
    let patterns = items
        .iter()
        .map(|item| {
            check(item)?;
            Pattern::compile(item, true, variables)
        })
        .collect::<Result<_, _>>()?;
    Ok(Targets { patterns, negated })
}

fn check_action(action: &str) -> Result<(), String> {
    match action.split_once(':') {
        _ if action == "*" => Ok(()),
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!("action {action:?} has no service prefix (e.g. \"s3:GetObject\")")),
    }
}

fn check_resource(resource: &str) -> Result<(), String> {
    if resource == "*" || resource.starts_with("arn:") {
        Ok(())
    } else {
        Err(format!("resource {resource:?} is not an ARN (e.g. \"arn:aws:s3:::bucket/*\")"))
    }
}

fn conditions(block: BTreeMap<String, BTreeMap<String, Value>>, variables: bool) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for (operator, keys) in block {
        if keys.is_empty() {
            return Err(format!("condition {operator:?} has no keys"));
        }
        for (key, value) in keys {
            let values = list(&value, true)
                .ok_or_else(|| format!("{operator}: values of {key:?} must be strings, numbers or booleans"))?;
            out.push(Condition::compile(&operator, &key, &values, variables)?);
        }
    }
    Ok(out)
}

/// One value or an array of them. `scalars`: condition values may also be numbers or booleans.
fn list(value: &Value, scalars: bool) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if scalars => Some(n.to_string()),
        Value::Bool(b) if scalars => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        value => one(value).map(|v| vec![v]),
    }
}
