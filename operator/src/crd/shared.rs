//! What both halves of the spec use: Secret references and the schema transforms.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key in a Secret in the BotDeployment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// An optional enum field: schemars lists `null` among the values of an `Option<Enum>`, which
/// `kubectl` (client-side validation of a `v1 List`) refuses as `unknown object type "nil"`.
/// `nullable: true` (from the type) still says that an explicit `null` means "not set".
pub(super) fn optional_enum(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

pub(super) fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
