//! Query templates: `{{name}}` placeholders filled per arm.
//!
//! Some values come from Rollout authors (a Rollout's `analysis.args`, its
//! Service name), and the filled query runs with Siskin's read access to
//! every series in Prometheus. A value must therefore never change the shape
//! of the query, only the value it is pasted into:
//!
//! - By default a value may hold only `A-Z a-z 0-9 _ . : / @ -`, what
//!   Kubernetes names, namespaces, routes and revisions are made of. This
//!   keeps out quotes and backslashes (closing the string to add a selector,
//!   `or vector(1)`, ...), spaces, brackets, and `#` (a comment that would
//!   swallow the rest of the query). Escaping alone would not do: in a regex
//!   matcher (`=~"...{{args.x}}"`) an escaped `.*` or `a|b` still widens the
//!   match to other series. With this rule, regex syntax is limited to `.`,
//!   which stands for one character only.
//! - A template argument marked `unrestricted` may hold anything, but only
//!   inside a double-quoted string, where it is escaped: it remains a single
//!   string literal. In a regex matcher it is still a regex, which is what a
//!   template author opts into.
//!
//! The rule is applied to every value where it is used, whatever its origin,
//! so a new variable is covered without anyone remembering to check it.

use std::collections::BTreeMap;

/// The rule a value must follow unless it is unrestricted, for messages.
pub const VALUE_RULE: &str = "only letters, digits and _ . : / @ -";

/// The values a query template may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, Value>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Value {
    text: String,
    /// Exempt from [`VALUE_RULE`]; usable only inside a double-quoted string.
    unrestricted: bool,
}

impl Variables {
    /// A value that must follow [`VALUE_RULE`].
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        let text = value.into();
        self.0.insert(
            name.to_string(),
            Value {
                text,
                unrestricted: false,
            },
        );
        self
    }

    /// A value exempt from [`VALUE_RULE`], usable only in a double-quoted string.
    pub fn with_unrestricted(mut self, name: &str, value: impl Into<String>) -> Self {
        let text = value.into();
        self.0.insert(
            name.to_string(),
            Value {
                text,
                unrestricted: true,
            },
        );
        self
    }

    /// Fills every `{{name}}` (spaces inside the braces allowed). An unknown
    /// name is an error naming it: a query with a hole would silently match
    /// nothing, and no data must never look like a pass. A value that breaks
    /// the rules above is an error too, never a query.
    pub fn render(&self, template: &str) -> Result<String, RenderError> {
        let mut out = String::with_capacity(template.len());
        let mut context = Context::Code;
        for piece in pieces(template) {
            match piece {
                Piece::Text(text) => {
                    context = context.after(text);
                    out.push_str(text);
                }
                Piece::Placeholder(name) => {
                    let value = self.0.get(name).ok_or_else(|| RenderError::Unknown(name.into()))?;
                    out.push_str(&value.render_in(name, context)?);
                }
            }
        }
        Ok(out)
    }
}

impl Variables {
    /// Fills every `{{name}}` of a URL. Each value is percent-encoded (all
    /// but `A-Z a-z 0-9 - . _ ~`), so it stays one value of one path segment
    /// or query parameter; a restricted value must still follow the rule.
    pub fn render_url(&self, template: &str) -> Result<String, RenderError> {
        let mut out = String::with_capacity(template.len());
        for piece in pieces(template) {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    let value = self.0.get(name).ok_or_else(|| RenderError::Unknown(name.into()))?;
                    if !value.unrestricted {
                        check_value(name, &value.text)?;
                    }
                    out.push_str(&percent_encode(&value.text));
                }
            }
        }
        Ok(out)
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Value {
    fn render_in(&self, name: &str, context: Context) -> Result<String, RenderError> {
        if !self.unrestricted {
            check_value(name, &self.text)?;
        }
        match context {
            Context::Quoted('"') => Ok(escape_double_quoted(&self.text)),
            _ if self.unrestricted => Err(RenderError::UnrestrictedOutsideString(name.into())),
            // Nothing in a restricted value needs escaping in any context.
            _ => Ok(self.text.clone()),
        }
    }
}

/// Whether `value` follows [`VALUE_RULE`]; the error names the variable.
pub fn check_value(name: &str, value: &str) -> Result<(), RenderError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '-');
    if value.chars().all(safe) {
        return Ok(());
    }
    let shown: String = value.chars().take(64).collect();
    Err(RenderError::Unsafe {
        name: name.into(),
        value: shown,
    })
}

/// Whether the template uses `{{name}}` inside a quoted string (a label
/// matcher's value), not only in code or a comment.
pub fn uses_in_string(template: &str, name: &str) -> bool {
    let mut context = Context::Code;
    pieces(template).into_iter().any(|piece| match piece {
        Piece::Text(text) => {
            context = context.after(text);
            false
        }
        Piece::Placeholder(used) => used == name && matches!(context, Context::Quoted(_)),
    })
}

/// Whether a URL template uses `{{name}}` before any `#` (a fragment is
/// never sent). URL values are percent-encoded wherever they stand.
pub fn uses_in_url(template: &str, name: &str) -> bool {
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) if text.contains('#') => return false,
            Piece::Text(_) => {}
            Piece::Placeholder(used) if used == name => return true,
            Piece::Placeholder(_) => {}
        }
    }
    false
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the query uses {{{{{0}}}}}, which is neither a built-in variable nor a template argument")]
    Unknown(String),
    #[error(
        "the value {value:?} of {{{{{name}}}}} is refused: query values may hold {VALUE_RULE} \
         (so they cannot close a string or widen a regex), unless the template marks the argument unrestricted"
    )]
    Unsafe { name: String, value: String },
    #[error(
        "{{{{{0}}}}} is an unrestricted argument, so the query may only use it inside a double-quoted string, \
         where it is escaped"
    )]
    UnrestrictedOutsideString(String),
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The template cut into literal text and placeholder names. An unclosed
/// `{{` is text.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        out.push(Piece::Text(&rest[..start]));
        out.push(Piece::Placeholder(after[..end].trim()));
        rest = &after[end + 2..];
    }
    out.push(Piece::Text(rest));
    out
}

/// Where in PromQL's lexical structure a placeholder sits. Only the
/// template's own text moves it: values are checked or escaped, so they
/// cannot open or close a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    Code,
    Comment,
    /// Inside a string opened by `"`, `'` or a backtick (raw, no escapes).
    Quoted(char),
}

impl Context {
    fn after(mut self, text: &str) -> Context {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            self = match (self, c) {
                (Context::Code, '#') => Context::Comment,
                (Context::Code, '"' | '\'' | '`') => Context::Quoted(c),
                (Context::Comment, '\n') => Context::Code,
                (Context::Quoted(q), '\\') if q != '`' => {
                    chars.next();
                    self
                }
                (Context::Quoted(q), c) if c == q => Context::Code,
                _ => self,
            };
        }
        self
    }
}

/// Escapes for a PromQL double-quoted string, which follows Go's rules.
fn escape_double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

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
        assert_eq!(err, Err(RenderError::Unknown("args.job".into())));
    }

    #[test]
    fn an_argument_cannot_close_the_string_and_add_a_selector() {
        let vars = Variables::default().with("args.job", r#"x"}) or vector(1) #"#);
        let err = vars.render(r#"sum(x{job="{{args.job}}"})"#);
        assert!(
            matches!(&err, Err(RenderError::Unsafe { name, .. }) if name == "args.job"),
            "{err:?}"
        );
    }

    #[test]
    fn an_argument_cannot_widen_a_regex_matcher() {
        for value in [".*", "a|b", "shop.+", "[a-z]+", "(x)?"] {
            let vars = Variables::default().with("args.pod", value);
            let err = vars.render(r#"sum(x{pod=~"{{args.pod}}-.*"})"#);
            assert!(matches!(err, Err(RenderError::Unsafe { .. })), "{value}: {err:?}");
        }
    }

    #[test]
    fn an_argument_cannot_end_the_query_with_a_comment_or_a_newline() {
        for value in ["x#", "x\n", "x y", "x\\"] {
            let vars = Variables::default().with("args.job", value);
            assert!(vars.render(r#"x{job="{{args.job}}"}"#).is_err(), "{value:?}");
        }
    }

    #[test]
    fn names_routes_and_revisions_pass_unchanged() {
        let value = "web-svc-shop-cart-80@kubernetesgateway:v1.2/x_y";
        let vars = Variables::default().with("args.route", value);
        let q = vars.render(r#"x{service="{{args.route}}"}"#);
        assert_eq!(q, Ok(format!(r#"x{{service="{value}"}}"#)));
    }

    #[test]
    fn a_built_in_variable_follows_the_same_rule() {
        let vars = Variables::default().with("service", "cart\"}");
        assert!(matches!(
            vars.render(r#"x{service="{{service}}"}"#),
            Err(RenderError::Unsafe { .. })
        ));
    }

    #[test]
    fn an_unrestricted_argument_is_escaped_and_stays_one_string() {
        let vars = Variables::default().with_unrestricted("args.path", "/a \"b\"\\\n");
        let q = vars.render(r#"x{path="{{args.path}}"}"#);
        assert_eq!(q.as_deref(), Ok(r#"x{path="/a \"b\"\\\n"}"#));
    }

    #[test]
    fn an_unrestricted_argument_is_refused_outside_a_double_quoted_string() {
        let vars = Variables::default().with_unrestricted("args.x", "1");
        for template in [
            "x > {{args.x}}",
            "x{a='{{args.x}}'}",
            "x{a=`{{args.x}}`}",
            "x # {{args.x}}",
        ] {
            assert_eq!(
                vars.render(template),
                Err(RenderError::UnrestrictedOutsideString("args.x".into())),
                "{template}"
            );
        }
    }

    #[test]
    fn an_escaped_quote_in_the_template_does_not_end_the_string() {
        let vars = Variables::default().with_unrestricted("args.x", "v");
        let q = vars.render(r#"x{a="say \"{{args.x}}\""}"#);
        assert_eq!(q.as_deref(), Ok(r#"x{a="say \"v\""}"#));
    }

    #[test]
    fn a_url_value_is_percent_encoded_and_stays_one_parameter() {
        let vars = Variables::default()
            .with("namespace", "shop")
            .with_unrestricted("args.q", "a&b=c #d/../e");
        let url = vars.render_url("https://x.example/q?ns={{namespace}}&q={{args.q}}");
        assert_eq!(
            url.as_deref(),
            Ok("https://x.example/q?ns=shop&q=a%26b%3Dc%20%23d%2F..%2Fe")
        );
        let unsafe_value = Variables::default().with("args.q", "a&b");
        assert!(unsafe_value.render_url("https://x/?q={{args.q}}").is_err());
    }

    #[test]
    fn a_url_uses_a_variable_only_before_its_fragment() {
        assert!(uses_in_url("https://x/q?ns={{namespace}}", "namespace"));
        assert!(!uses_in_url("https://x/q#{{namespace}}", "namespace"));
        assert!(!uses_in_url("https://x/q?ns={{args.namespace}}", "namespace"));
    }

    #[test]
    fn a_variable_in_a_string_is_told_from_one_in_code_or_a_comment() {
        assert!(uses_in_string(r#"x{namespace="{{ namespace }}"}"#, "namespace"));
        assert!(uses_in_string(r#"x{ns=~'.*{{namespace}}'}"#, "namespace"));
        assert!(!uses_in_string("x # {{namespace}}", "namespace"));
        assert!(!uses_in_string(r#"x{job="{{args.namespace}}"}"#, "namespace"));
        assert!(!uses_in_string("sum(x)", "namespace"));
    }
}
