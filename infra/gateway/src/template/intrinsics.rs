//! The resources an intrinsic function names without deploying (`!Ref X`, `!GetAtt X.Arn`,
//! `${X}` in a `!Sub`, in their short or `Fn::` forms, nested in `!Join`): how the WebSocket API's
//! Route → Integration → Function chain is followed.

use serde_norway::Value;

use super::yaml::plain_str;

/// The resource a `!Ref X` (or `{Ref: X}`) names.
pub(crate) fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => plain_str(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => map.get("Ref").and_then(plain_str),
        _ => None,
    }
}

/// A resource an intrinsic function refers to: `!Ref X`, `!GetAtt X.Arn`, `${X}` or `${X.Arn}`
/// in a `!Sub`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) attribute: Option<String>,
}

/// Every reference in a value, in order, whatever the intrinsic's form (`!Sub`, `!Join`,
/// `Fn::Sub` with variables, …). Pseudo parameters (`AWS::Region`) are left out.
pub(crate) fn references(value: &Value) -> Vec<Reference> {
    let mut found = Vec::new();
    collect_references(value, &mut found);
    found.retain(|reference| !reference.name.contains("::"));
    found
}

fn collect_references(value: &Value, found: &mut Vec<Reference>) {
    match value {
        Value::Tagged(tagged) => collect_intrinsic(&tagged.tag.to_string(), &tagged.value, found),
        Value::Mapping(map) => {
            for (key, inner) in map {
                match plain_str(key) {
                    Some(name) if name == "Ref" || name.starts_with("Fn::") => {
                        let tag = name.strip_prefix("Fn::").unwrap_or(name);
                        collect_intrinsic(tag, inner, found);
                    }
                    _ => collect_references(inner, found),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                collect_references(item, found);
            }
        }
        _ => {}
    }
}

fn collect_intrinsic(tag: &str, value: &Value, found: &mut Vec<Reference>) {
    let tag = tag.trim_start_matches('!');
    match (tag, value) {
        ("Ref", Value::String(name)) => found.push(Reference {
            name: name.clone(),
            attribute: None,
        }),
        ("GetAtt", Value::String(text)) => {
            let (name, attribute) = match text.split_once('.') {
                Some((name, attribute)) => (name, Some(attribute.to_owned())),
                None => (text.as_str(), None),
            };
            found.push(Reference {
                name: name.to_owned(),
                attribute,
            });
        }
        ("GetAtt", Value::Sequence(parts)) => {
            if let Some(name) = parts.first().and_then(plain_str) {
                found.push(Reference {
                    name: name.to_owned(),
                    attribute: parts.get(1).and_then(plain_str).map(str::to_owned),
                });
            }
        }
        ("Sub", Value::String(text)) => found.extend(substitutions(text)),
        ("Sub", Value::Sequence(parts)) => {
            if let Some(text) = parts.first().and_then(plain_str) {
                found.extend(substitutions(text));
            }
            for part in parts.iter().skip(1) {
                collect_references(part, found);
            }
        }
        _ => collect_references(value, found),
    }
}

/// The `${Name}` / `${Name.Attribute}` placeholders of a `!Sub` string (`${!Literal}` is text).
fn substitutions(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = after[..end].trim();
        if !inner.is_empty() && !inner.starts_with('!') {
            let (name, attribute) = match inner.split_once('.') {
                Some((name, attribute)) => (name, Some(attribute.to_owned())),
                None => (inner, None),
            };
            found.push(Reference {
                name: name.to_owned(),
                attribute,
            });
        }
        rest = &after[end + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, attribute: Option<&str>) -> Reference {
        Reference {
            name: name.to_owned(),
            attribute: attribute.map(str::to_owned),
        }
    }

    fn refs(yaml: &str) -> Vec<Reference> {
        let value: Value = serde_norway::from_str(yaml).expect("yaml");
        references(&value)
    }

    #[test]
    fn references_in_every_intrinsic_form() {
        assert_eq!(
            refs(
                r#"!Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WsConnectFunction.Arn}/invocations""#
            ),
            [reference("WsConnectFunction", Some("Arn"))]
        );
        assert_eq!(
            refs(r#"!Sub "integrations/${WsConnectInteg}""#),
            [reference("WsConnectInteg", None)]
        );
        assert_eq!(
            refs("!Join ['/', ['integrations', !Ref ConnectInteg]]"),
            [reference("ConnectInteg", None)]
        );
        assert_eq!(
            refs(r#"{"Fn::Join": ["", ["integrations/", {"Ref": "I"}]]}"#),
            [reference("I", None)]
        );
        assert_eq!(
            refs(
                r#"!Sub ["arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/${Fn}/invocations", {Fn: !GetAtt F.Arn}]"#
            ),
            [reference("Fn", None), reference("F", Some("Arn"))]
        );
        assert_eq!(
            refs(r#"{"Fn::GetAtt": ["F", "Arn"]}"#),
            [reference("F", Some("Arn"))]
        );
        assert_eq!(refs(r#"!Sub "a ${!Literal} b""#), []);
    }
}
