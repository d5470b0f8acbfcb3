//! Checks a model's tool arguments against the tool's input schema before the server sees them,
//! so that the model gets a precise message it can act on.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// A tool's input schema, compiled on the tool's first call (most tools of a session are never
/// called: compiling all of them at start-up cost time and memory for nothing). Cheap to clone;
/// clones share the compiled validator.
#[derive(Clone)]
pub struct ArgumentValidator {
    tool: Arc<str>,
    input_schema: Arc<Map<String, Value>>,
    /// The schema as the model sees it, quoted back in error messages.
    parameters: Arc<Value>,
    /// `None` inside when the schema cannot be compiled (e.g. a remote `$ref`): such a tool is
    /// called unchecked and the server judges the arguments.
    compiled: Arc<OnceLock<Option<jsonschema::Validator>>>,
}

/// At most this many schema errors are reported; the first few are enough to fix a call.
const MAX_ERRORS: usize = 5;
/// The schema quoted in an error message is cut to this many characters.
const MAX_SCHEMA_CHARS: usize = 1500;

impl ArgumentValidator {
    pub fn new(
        tool: &str,
        input_schema: &Arc<Map<String, Value>>,
        parameters: &Arc<Value>,
    ) -> Self {
        Self {
            tool: tool.into(),
            input_schema: input_schema.clone(),
            parameters: parameters.clone(),
            compiled: Arc::new(OnceLock::new()),
        }
    }

    /// Whether the schema has been compiled (by a first call).
    #[cfg(test)]
    fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    fn validator(&self) -> Option<&jsonschema::Validator> {
        self.compiled
            .get_or_init(|| {
                match jsonschema::validator_for(&Value::Object((*self.input_schema).clone())) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(tool = %self.tool, error = %e, "tool input schema does not compile; its arguments are not checked");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// `Ok(arguments as an object)`, or `Err(message for the model)`.
    pub fn check(&self, arguments: Value) -> Result<Map<String, Value>, String> {
        let object = match arguments {
            Value::Object(o) => o,
            Value::Null => Map::new(),
            // Some models send the arguments as a JSON string; accept it when it holds an object.
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(o)) => o,
                _ => {
                    return Err(
                        self.message(vec!["arguments must be a JSON object, not a string".into()])
                    );
                }
            },
            other => {
                return Err(self.message(vec![format!(
                    "arguments must be a JSON object, not {}",
                    kind(&other)
                )]));
            }
        };
        let Some(validator) = self.validator() else {
            return Ok(object);
        };
        let instance = Value::Object(object);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(MAX_ERRORS)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{path}`: {e}")
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(self.message(errors));
        }
        match instance {
            Value::Object(o) => Ok(o),
            _ => Ok(Map::new()),
        }
    }

    fn message(&self, errors: Vec<String>) -> String {
        let mut schema = serde_json::to_string(&*self.parameters).unwrap_or_default();
        if let Some((cut, _)) = schema.char_indices().nth(MAX_SCHEMA_CHARS) {
            schema.truncate(cut);
            schema.push_str(" …");
        }
        format!(
            "The arguments do not match the tool's input schema: {}. Fix the arguments and call the tool again. Schema: {schema}",
            errors.join("; ")
        )
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator(schema: Value) -> ArgumentValidator {
        let map = Arc::new(schema.as_object().cloned().expect("object schema"));
        ArgumentValidator::new("t", &map, &Arc::new(schema))
    }

    #[test]
    fn compiled_on_the_first_call_only() {
        let v = validator(json!({"type": "object", "properties": {"a": {"type": "number"}}}));
        let shared = v.clone();
        assert!(!v.is_compiled(), "listing a tool compiles nothing");
        assert!(v.check(json!({"a": "x"})).is_err());
        assert!(v.is_compiled() && shared.is_compiled(), "clones share it");
        assert!(shared.check(json!({"a": 2})).is_ok());
    }

    #[test]
    fn valid_arguments_pass() {
        let v = validator(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]
        }));
        assert_eq!(
            v.check(json!({"a": 1})).expect("valid"),
            json!({"a": 1}).as_object().cloned().expect("o")
        );
    }

    #[test]
    fn errors_name_the_path_and_the_problem() {
        let v = validator(json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"]
        }));
        let msg = v.check(json!({"a": "one"})).expect_err("invalid");
        assert!(msg.contains("at `/a`"), "{msg}");
        assert!(msg.contains("\"one\" is not of type \"number\""), "{msg}");
        assert!(msg.contains("\"b\" is a required property"), "{msg}");
        assert!(msg.contains("Schema: {"), "{msg}");
    }

    #[test]
    fn non_objects_rejected_and_json_strings_accepted() {
        let v = validator(json!({"type": "object", "properties": {"x": {"type": "string"}}}));
        assert!(
            v.check(json!([1]))
                .expect_err("array")
                .contains("not an array")
        );
        assert!(
            v.check(json!("plain"))
                .expect_err("string")
                .contains("not a string")
        );
        assert_eq!(
            v.check(json!(r#"{"x": "y"}"#)).expect("json string")["x"],
            "y"
        );
        assert!(
            v.check(Value::Null)
                .expect("null is no arguments")
                .is_empty()
        );
    }

    #[test]
    fn uncompilable_schema_is_not_checked() {
        let v = validator(
            json!({"type": "object", "properties": {"a": {"$ref": "https://example.invalid/x.json"}}}),
        );
        assert!(v.check(json!({"a": 1})).is_ok());
    }
}
