//! Hand-written schema fragments for fields whose generated schema would hurt.

/// The pod template is stored as an opaque object. Its full OpenAPI schema is
/// several hundred kilobytes, which breaks client-side `kubectl apply` (the
/// last-applied annotation is capped at 256 KiB) and slows every API server
/// that loads the CRD. The template is still validated: by the API server when
/// Siskin creates the Deployment for the revision.
pub fn pod_template(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    preserved()
}

/// An object whose shape another module owns (e.g. the judges' state).
pub fn preserved_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    preserved()
}

fn preserved() -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
