//! Query templates: `{{name}}` placeholders filled per arm.

use std::collections::BTreeMap;

/// The values a query template may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_string(), value.into());
        self
    }

    /// Fills every `{{name}}` (spaces inside the braces allowed). An unknown
    /// name is an error naming it: a query with a hole would silently match
    /// nothing, and no data must never look like a pass.
    pub fn render(&self, template: &str) -> Result<String, UnknownVariable> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = after[..end].trim();
            let value = self.0.get(name).ok_or_else(|| UnknownVariable(name.to_string()))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the query uses {{{{{0}}}}}, which is neither a built-in variable nor a template argument")]
pub struct UnknownVariable(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder() {
        let vars = Variables::default()
            .with("namespace", "shop")
            .with("service", "cart-canary");
        let q = vars.render(r#"sum(x{service=~".*-svc-{{namespace}}-{{ service }}-.*"})"#);
        assert_eq!(q.as_deref(), Ok(r#"sum(x{service=~".*-svc-shop-cart-canary-.*"})"#));
    }

    #[test]
    fn an_unknown_variable_is_an_error_not_an_empty_match() {
        let err = Variables::default().render("sum(x{job=\"{{args.job}}\"})");
        assert_eq!(err, Err(UnknownVariable("args.job".into())));
    }
}
