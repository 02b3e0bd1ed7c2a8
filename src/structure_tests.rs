//! Dependencies between the library's modules run one way: no module
//! depends, through any chain of others, on itself.
//!
//! The check reads the sources under `src/` itself, so it needs nothing
//! installed (`cargo modules dependencies --acyclic` answers the same
//! question with a compiler's precision, but needs a nightly toolchain).
//!
//! A **node** is a module of the library crate: `lib.rs` is `crate`,
//! `a.rs` and `a/mod.rs` are `crate::a`, `a/b.rs` is `crate::a::b`. The
//! binaries (`main.rs`, `bin/`) are other crates and test code is not
//! logic: files named `tests.rs` or under a `tests/` directory, modules
//! declared `#[cfg(test)]`, and every `#[cfg(test)]` item are left out.
//! Inline `mod x { }` blocks and `#[path]` are not followed.
//!
//! An **edge** `a -> b` is a reference in `a` to `b` or to an item `b`
//! defines: a `use`, or a path in code (`crate::b::f()`, `super::T`,
//! `child::f()`, or `name::f()` where `use` bound `name`). A name a module
//! only imports or re-exports is followed to the module defining it, so
//! `super::Error` where the parent says `pub use error::Error` is an edge to
//! `error`, not to the parent. References to a module's own items, and a
//! parent's `mod` declarations and `pub use child::…` re-exports (its
//! facade, not its logic, unless its own code uses the item too) are not
//! edges. Every other reference is: a child using an item its parent
//! defines, and a parent calling into its child, make a cycle. Items named
//! without a path count through the `use` that brought them in; macros are
//! not expanded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Module prefixes whose cycles are being taken apart: a cycle made only
/// of modules under one of these is not reported (one that also passes
/// through any other module still is). Empty: every module is held to it.
const UNDER_REPAIR: &[&str] = &[];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// The tokens of a source file with their line numbers: comments, string,
/// char and number literals are dropped.
fn lex(source: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    let newlines = |from: usize, to: usize| chars[from..to].iter().filter(|c| **c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (start, mut depth) = (i, 0);
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += newlines(start, i);
        } else if c == '"' {
            let start = i;
            i = skip_string(&chars, i + 1, 0);
            line += newlines(start, i);
        } else if c == '\'' {
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime: its name is lexed as an identifier.
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let hashes = chars[i..].iter().take_while(|c| **c == '#').count();
            let quote = chars.get(i + hashes).copied();
            if matches!(word.as_str(), "r" | "br" | "cr") && quote == Some('"') {
                let from = i;
                i = skip_string(&chars, i + hashes + 1, hashes);
                line += newlines(from, i);
            } else if matches!(word.as_str(), "b" | "c") && hashes == 0 && quote == Some('"') {
                let from = i;
                i = skip_string(&chars, i + 1, 0);
                line += newlines(from, i);
            } else if word == "b" && quote == Some('\'') {
                // A byte literal: its quote is lexed next, as a char.
            } else if word == "r" && hashes == 1 {
                // A raw identifier, `r#type`.
                i += 1;
            } else if !start_is_digit(&word) {
                tokens.push((Token::Ident(word), line));
            }
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

fn start_is_digit(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// The index after a string whose opening quote is just before `i`; raw
/// strings (`hashes` > 0 or `r"…"`) have no escapes but `"` followed by
/// `hashes` `#`s ends them.
fn skip_string(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '\\' && hashes == 0 {
            i += 2;
        } else if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return i + 1 + hashes;
        } else {
            i += 1;
        }
    }
    i
}

fn is_ident(token: Option<&(Token, usize)>, word: &str) -> bool {
    matches!(token, Some((Token::Ident(w), _)) if w == word)
}

fn is_punct(token: Option<&(Token, usize)>, c: char) -> bool {
    matches!(token, Some((Token::Punct(p), _)) if *p == c)
}

/// The index after the bracketed group opening at `i` (`(`, `[` or `{`).
fn skip_group(tokens: &[(Token, usize)], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i].0 {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Drops every item marked `#[cfg(test)]`; returns the rest and the names of
/// the modules so declared (`#[cfg(test)] mod name;`).
fn without_test_items(tokens: Vec<(Token, usize)>) -> (Vec<(Token, usize)>, Vec<String>) {
    let cfg_test = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".into()),
        Token::Punct('('),
        Token::Ident("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    let (mut kept, mut test_modules) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < tokens.len() {
        let marked = tokens.len() >= i + cfg_test.len()
            && tokens[i..i + cfg_test.len()].iter().map(|(t, _)| t).eq(cfg_test.iter());
        if !marked {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        i += cfg_test.len();
        // Further attributes of the same item.
        while is_punct(tokens.get(i), '#') && is_punct(tokens.get(i + 1), '[') {
            i = skip_group(&tokens, i + 1);
        }
        let mut at = i;
        while is_ident(tokens.get(at), "pub") || is_punct(tokens.get(at), '(') {
            at = if is_punct(tokens.get(at), '(') {
                skip_group(&tokens, at)
            } else {
                at + 1
            };
        }
        if is_ident(tokens.get(at), "mod")
            && let (Some((Token::Ident(name), _)), true) = (tokens.get(at + 1), is_punct(tokens.get(at + 2), ';'))
        {
            test_modules.push(name.clone());
        }
        while i < tokens.len() {
            match tokens[i].0 {
                Token::Punct(';') => {
                    i += 1;
                    break;
                }
                Token::Punct('{') => {
                    i = skip_group(&tokens, i);
                    break;
                }
                Token::Punct('(' | '[') => i = skip_group(&tokens, i),
                _ => i += 1,
            }
        }
    }
    (kept, test_modules)
}

/// One `use` leaf: the path it names, the name it binds (`None` for a glob
/// or `self` import of a module already named), whether it is `pub`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UseLeaf {
    path: Vec<String>,
    binds: Option<String>,
    public: bool,
    line: usize,
}

/// Expands a use tree (`a::{b, c::d as e, f::*}`) starting at `i`; returns
/// the index after it.
fn use_tree(
    tokens: &[(Token, usize)],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i).map(|(t, _)| t) {
            Some(Token::Punct('{')) => {
                i += 1;
                while !is_punct(tokens.get(i), '}') && i < tokens.len() {
                    i = use_tree(tokens, i, &path, out);
                    if is_punct(tokens.get(i), ',') {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Token::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Token::Ident(word)) => {
                if word == "self" && !path.is_empty() {
                    // `use a::{self}` binds `a`.
                } else {
                    path.push(word.clone());
                }
                i += 1;
                if is_punct(tokens.get(i), ':') && is_punct(tokens.get(i + 1), ':') {
                    i += 2;
                    continue;
                }
                let mut binds = path.last().cloned();
                if is_ident(tokens.get(i), "as")
                    && let Some((Token::Ident(alias), _)) = tokens.get(i + 1)
                {
                    binds = (alias != "_").then(|| alias.clone());
                    i += 2;
                }
                out.push((path, binds));
                return i;
            }
            _ => return i + 1,
        }
    }
}

/// What a file's tokens say about its dependencies.
#[derive(Default)]
struct References {
    /// The leaves of its `use` declarations.
    uses: Vec<UseLeaf>,
    /// The paths outside them (`a::b::c`, at least one `::`).
    paths: Vec<(Vec<String>, usize)>,
    /// Every identifier outside them, with the line it first appears on.
    idents: BTreeMap<String, usize>,
}

fn references(tokens: &[(Token, usize)]) -> References {
    let mut found = References::default();
    let (uses, paths) = (&mut found.uses, &mut found.paths);
    let mut i = 0;
    while i < tokens.len() {
        if is_ident(tokens.get(i), "use") {
            let before = i.checked_sub(1).and_then(|b| tokens.get(b));
            let public = is_ident(before, "pub") || is_punct(before, ')');
            let line = tokens[i].1;
            let mut leaves = Vec::new();
            let mut at = i + 1;
            if is_punct(tokens.get(at), ':') {
                at += 2;
            }
            at = use_tree(tokens, at, &[], &mut leaves);
            while at < tokens.len() && !is_punct(tokens.get(at), ';') {
                at += 1;
            }
            uses.extend(leaves.into_iter().map(|(path, binds)| UseLeaf {
                path,
                binds,
                public,
                line,
            }));
            i = at + 1;
            continue;
        }
        if let (Token::Ident(word), line) = &tokens[i] {
            found.idents.entry(word.clone()).or_insert(*line);
        }
        let starts_path = matches!(tokens[i].0, Token::Ident(_))
            && !(i >= 2 && is_punct(tokens.get(i - 1), ':') && is_punct(tokens.get(i - 2), ':'))
            && !(i >= 1 && is_punct(tokens.get(i - 1), '$'));
        if starts_path {
            let line = tokens[i].1;
            let mut path = Vec::new();
            let mut at = i;
            while let Some((Token::Ident(word), _)) = tokens.get(at) {
                path.push(word.clone());
                if is_punct(tokens.get(at + 1), ':') && is_punct(tokens.get(at + 2), ':') {
                    at += 3;
                } else {
                    break;
                }
            }
            for word in &path {
                found.idents.entry(word.clone()).or_insert(line);
            }
            if path.len() > 1 {
                paths.push((path, line));
            }
            i = at + 1;
            continue;
        }
        i += 1;
    }
    found
}

struct Module {
    file: String,
    uses: Vec<UseLeaf>,
    paths: Vec<(Vec<String>, usize)>,
    idents: BTreeMap<String, usize>,
}

/// A reference from one module to another, where it is written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Site>>;

struct Crate {
    modules: BTreeMap<String, Module>,
}

fn parent(module: &str) -> Option<&str> {
    module.rsplit_once("::").map(|(parent, _)| parent)
}

fn is_within(module: &str, ancestor: &str) -> bool {
    module == ancestor || module.starts_with(&format!("{ancestor}::"))
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut files = Vec::new();
        collect_files(src, &mut files);
        let mut modules = BTreeMap::new();
        let mut test_only = Vec::new();
        for file in files {
            let rel = file.strip_prefix(src).unwrap_or(&file);
            let parts: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let first = parts.first().map(String::as_str);
            if matches!(first, Some("main" | "bin")) || parts.iter().any(|p| p == "tests") {
                continue;
            }
            let names: Vec<&str> = parts
                .iter()
                .map(String::as_str)
                .filter(|p| !matches!(*p, "lib" | "mod"))
                .collect();
            let name = std::iter::once("crate").chain(names).collect::<Vec<_>>().join("::");
            let source = std::fs::read_to_string(&file).unwrap_or_default();
            let (tokens, tests) = without_test_items(lex(&source));
            test_only.extend(tests.into_iter().map(|t| format!("{name}::{t}")));
            let References { uses, paths, idents } = references(&tokens);
            let file = format!("src/{}", rel.display());
            let module = Module {
                file,
                uses,
                paths,
                idents,
            };
            modules.insert(name, module);
        }
        modules.retain(|name, _| !test_only.iter().any(|t| is_within(name, t)));
        Crate { modules }
    }

    /// The name `name` is bound to in `module` by a `use`, as written.
    fn binding(&self, module: &str, name: &str) -> Option<&UseLeaf> {
        let uses = &self.modules.get(module)?.uses;
        uses.iter().find(|u| u.binds.as_deref() == Some(name))
    }

    /// The module a path written in `from` refers to (the module itself, or
    /// the one defining the item it names); `None` outside the crate.
    fn resolve(&self, from: &str, path: &[String], depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        let (head, rest) = path.split_first()?;
        let base = match head.as_str() {
            "crate" => "crate".to_string(),
            "self" => from.to_string(),
            "super" => {
                let mut base = parent(from)?.to_string();
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base = parent(&base)?.to_string();
                    rest = &rest[1..];
                }
                return self.within(&base, rest, depth);
            }
            _ => {
                let child = format!("{from}::{head}");
                if self.modules.contains_key(&child) {
                    return self.within(&child, rest, depth);
                }
                let bound = self.binding(from, head)?;
                let mut full = bound.path.clone();
                full.extend(rest.iter().cloned());
                // A `use` path is relative to the module it is written in.
                return self.resolve(from, &full, depth + 1);
            }
        };
        self.within(&base, rest, depth)
    }

    /// Follows `rest` down from the module `base`.
    fn within(&self, base: &str, rest: &[String], depth: usize) -> Option<String> {
        let mut module = base.to_string();
        let mut rest = rest;
        while let Some((next, tail)) = rest.split_first() {
            let child = format!("{module}::{next}");
            if self.modules.contains_key(&child) {
                module = child;
                rest = tail;
                continue;
            }
            // An item the module only imports is defined elsewhere.
            if let Some(bound) = self.binding(&module, next) {
                let mut full = bound.path.clone();
                full.extend(tail.iter().cloned());
                return self.resolve(&module, &full, depth + 1).or(Some(module));
            }
            break;
        }
        self.modules.contains_key(&module).then_some(module)
    }

    fn graph(&self) -> Graph {
        let mut graph = Graph::new();
        for (name, module) in &self.modules {
            let edges = graph.entry(name.clone()).or_default();
            let uses = module
                .uses
                .iter()
                .map(|u| (&u.path, u.line, u.public.then_some(&u.binds)));
            let paths = module.paths.iter().map(|(p, line)| (p, *line, None));
            for (path, mut line, reexport) in uses.chain(paths) {
                let Some(target) = self.resolve(name, path, 0) else {
                    continue;
                };
                if target == *name {
                    continue;
                }
                // A re-export of a descendant's item is the facade, unless
                // the module's own code uses that item too.
                if let Some(binds) = reexport.filter(|_| is_within(&target, name)) {
                    match binds.as_ref().and_then(|b| module.idents.get(b)) {
                        Some(used_at) => line = *used_at,
                        None => continue,
                    }
                }
                let site = Site {
                    file: module.file.clone(),
                    line,
                };
                edges.entry(target).or_insert(site);
            }
        }
        graph
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module `from` depends on, directly or not (itself only through a
/// cycle).
fn reach(graph: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if seen.insert(next.clone()) {
                queue.push_back(next.clone());
            }
        }
    }
    seen
}

/// The strongly connected components of more than one node, each as one
/// shortest cycle through its first node, in a stable order.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|n| (n, reach(graph, n))).collect();
    let mut placed = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if placed.contains(node) || !reach[node].contains(node) {
            continue;
        }
        let component: BTreeSet<&String> = reach[node]
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(node)))
            .collect();
        placed.extend(component.iter().map(|n| (*n).clone()));
        found.push(shortest_cycle(graph, node, &component));
    }
    found
}

/// The shortest path from `start` back to itself inside `component`.
fn shortest_cycle(graph: &Graph, start: &String, component: &BTreeSet<&String>) -> Vec<String> {
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if !component.contains(next) {
                continue;
            }
            if next == start {
                let mut cycle = vec![node.clone()];
                let mut at = node;
                while at != start {
                    at = came_from[at];
                    cycle.push(at.clone());
                }
                cycle.reverse();
                cycle.push(start.clone());
                return cycle;
            }
            if !came_from.contains_key(next) && next != start {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start.clone()]
}

fn under_repair(cycle: &[String]) -> bool {
    UNDER_REPAIR
        .iter()
        .any(|prefix| cycle.iter().all(|module| is_within(module, prefix)))
}

fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut text = cycle.join(" -> ");
    for pair in cycle.windows(2) {
        if let Some(site) = graph.get(&pair[0]).and_then(|edges| edges.get(&pair[1])) {
            text.push_str(&format!(
                "\n    {} -> {}: {}:{}",
                pair[0], pair[1], site.file, site.line
            ));
        }
    }
    let start = &cycle[0];
    let others: Vec<String> = reach(graph, start)
        .into_iter()
        .filter(|m| !cycle.contains(m) && reach(graph, m).contains(start))
        .collect();
    if !others.is_empty() {
        text.push_str(&format!("\n    (also in this group: {})", others.join(", ")));
    }
    text
}

#[test]
fn modules_depend_on_each_other_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::read(&src);
    assert!(
        krate.modules.contains_key("crate::controller::reconcile") && krate.modules.len() > 30,
        "the sources were read: {:?}",
        krate.modules.keys().collect::<Vec<_>>()
    );
    let graph = krate.graph();
    let found: Vec<String> = cycles(&graph)
        .iter()
        .filter(|cycle| !under_repair(cycle))
        .map(|cycle| describe(&graph, cycle))
        .collect();
    assert!(
        found.is_empty(),
        "module dependency cycles (one per group of modules that depend on each other):\n{}",
        found.join("\n")
    );
}

#[cfg(test)]
mod checker {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut graph = Graph::new();
        for (from, to) in edges {
            let site = Site {
                file: format!("src/{from}.rs"),
                line: 1,
            };
            graph.entry(from.to_string()).or_default().insert(to.to_string(), site);
            graph.entry(to.to_string()).or_default();
        }
        graph
    }

    #[test]
    fn finds_a_cycle_and_names_each_edge() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("x", "a")]);
        assert_eq!(cycles(&g), [["a", "b", "c", "a"]]);
        let text = describe(&g, &cycles(&g)[0]);
        assert!(text.starts_with("a -> b -> c -> a\n"), "{text}");
        assert!(text.contains("c -> a: src/c.rs:1"), "{text}");
    }

    #[test]
    fn an_acyclic_graph_passes() {
        let g = graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")]);
        assert!(cycles(&g).is_empty());
    }

    #[test]
    fn the_shortest_cycle_of_a_group_is_reported_once() {
        let g = graph(&[("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")]);
        assert_eq!(cycles(&g), [["a", "b", "a"]]);
    }

    /// A crate in a temporary directory: each file's path and source.
    fn read(files: &[(&str, &str)]) -> Graph {
        let src = std::env::temp_dir().join(format!("siskin-module-graph-{}", std::process::id()));
        for (path, source) in files {
            let file = src.join(path);
            std::fs::create_dir_all(file.parent().expect("a file has a directory")).expect("temp dir");
            std::fs::write(&file, source).expect("temp file");
        }
        let graph = Crate::read(&src).graph();
        std::fs::remove_dir_all(&src).expect("temp dir removed");
        graph
    }

    #[test]
    fn names_are_followed_to_the_module_defining_them() {
        let graph = read(&[
            ("lib.rs", "pub mod a; mod d; fn main() {}"),
            (
                "a/mod.rs",
                "mod b; mod c; pub use b::Thing; pub use c::Other; pub fn f() { c::g(); }",
            ),
            ("a/b.rs", "use super::Other; pub struct Thing(Other);"),
            ("a/c.rs", "pub fn g() {} pub struct Other;"),
            ("a/tests.rs", "use super::*; use crate::d::h;"),
            (
                "d.rs",
                "use crate::a::Thing; fn h() { super::a::f(); } #[cfg(test)] mod tests { use crate::d; }",
            ),
            ("bin/tool.rs", "use siskin::d::h;"),
        ]);
        let edges: Vec<(&str, &str)> = graph
            .iter()
            .flat_map(|(from, to)| to.keys().map(move |to| (from.as_str(), to.as_str())))
            .collect();
        assert_eq!(
            edges,
            [
                // The call into c counts; re-exporting b's and c's items does not.
                ("crate::a", "crate::a::c"),
                // Other is c's, re-exported by the parent.
                ("crate::a::b", "crate::a::c"),
                // f is the parent's own; Thing is b's.
                ("crate::d", "crate::a"),
                ("crate::d", "crate::a::b"),
            ]
        );
    }

    #[test]
    fn use_trees_expand_and_test_items_are_dropped() {
        let source = r#"
            use super::{a::B as C, d::{self, e, f::*}};
            pub use child::Thing;
            // crate::in_a_comment::X
            fn f() { let s = "crate::in_a_string::X"; crate::real::g(); }
            #[cfg(test)]
            mod tests { use crate::only_in_tests::X; }
            #[cfg(test)]
            mod fixtures;
        "#;
        let (tokens, test_modules) = without_test_items(lex(source));
        assert_eq!(test_modules, ["fixtures"]);
        let References { uses, paths, .. } = references(&tokens);
        let leaves: Vec<(String, Option<&str>, bool)> = uses
            .iter()
            .map(|u| (u.path.join("::"), u.binds.as_deref(), u.public))
            .collect();
        assert_eq!(
            leaves,
            [
                ("super::a::B".to_string(), Some("C"), false),
                ("super::d".to_string(), Some("d"), false),
                ("super::d::e".to_string(), Some("e"), false),
                ("super::d::f".to_string(), None, false),
                ("child::Thing".to_string(), Some("Thing"), true),
            ]
        );
        let paths: Vec<String> = paths.iter().map(|(p, _)| p.join("::")).collect();
        assert_eq!(paths, ["crate::real::g"]);
    }
}
