//! The layering check (test only): reads the `crate::`, `super::` and `self::` paths of every
//! module of a crate's `src/` and reports import cycles between top-level modules, and between
//! sibling submodules of one module. STYLE.md asks that modules never import in circles; this
//! keeps it so. The gateway's and the dev tool's tests include this file too (`infra/gateway/src/lib.rs`,
//! `infra/devtool/src/lib.rs`).
//!
//! Comments and string literals are skipped, test code counts like any other code, and a
//! parent's own use of its children (or a child's of its parent) is not a cycle.
//!
//! It also keeps the leaves of [`LEAVES`] leaves: modules the layers build on (typed ids, the
//! domain's input errors) import nothing of their crate, so they can never close a cycle nor
//! drag a layer (the HTTP edge, say) into the domain types that use them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path from the crate root, e.g. `["queue", "worker"]`.
type ModulePath = Vec<String>;

/// Where one module refers to another: `file:line`.
type Evidence = BTreeMap<(ModulePath, ModulePath), String>;

/// The modules of each crate that must import nothing of it, by package name, and why.
pub const LEAVES: &[(&str, &[&str])] = &[(
    "shared",
    &[
        // Every layer names its rows with them.
        "ids",
        // The domain's parsers answer with it; the HTTP edge converts it, never the reverse.
        "input",
        // Every function reads its settings first; each section reads only its variables.
        "config",
        // How a cached value is encoded: the envelope and every cached type build on it.
        "cache::value",
        // An upload's bytes are untrusted: reading and measuring them touch nothing else.
        "xrays::analysis::decode",
        "xrays::analysis::measure",
    ],
)];

/// Every cycle found in the crate whose sources are under `src`, one line per cycle naming
/// each import that closes it. Empty when the layers are clean.
pub fn cycles(src: &Path) -> Vec<String> {
    let (known, evidence) = imports(src);
    let mut found = Vec::new();
    // Top level: collapse every module to its first segment.
    found.extend(report(
        "top-level modules",
        &collapse(&evidence, |m| m.get(..1)),
    ));
    // Siblings: within each parent, collapse to the child one level below it.
    let parents: BTreeSet<ModulePath> = known
        .iter()
        .filter(|m| m.len() > 1)
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for parent in parents {
        let depth = parent.len() + 1;
        let graph = collapse(&evidence, |m| {
            (m.len() >= depth && m[..parent.len()] == parent[..]).then(|| &m[..depth])
        });
        found.extend(report(
            &format!("submodules of {}", parent.join("::")),
            &graph,
        ));
    }
    found
}

/// Each import by which a module of `leaves` (paths such as `input` or `template::yaml`)
/// refers to a module of the crate under `src` outside itself, and each leaf that is no module
/// of it. Empty when every leaf is one.
pub fn leaf_imports(src: &Path, leaves: &[&str]) -> Vec<String> {
    let (known, evidence) = imports(src);
    report_leaves(&known, &evidence, leaves)
}

fn report_leaves(
    known: &BTreeSet<ModulePath>,
    evidence: &Evidence,
    leaves: &[&str],
) -> Vec<String> {
    let mut found = Vec::new();
    for leaf in leaves {
        let leaf_path: ModulePath = leaf.split("::").map(str::to_owned).collect();
        if !known.contains(&leaf_path) {
            found.push(format!(
                "{leaf} is listed as a leaf but is no module of the crate"
            ));
            continue;
        }
        let inside = |m: &ModulePath| m.starts_with(&leaf_path);
        for ((from, to), place) in evidence {
            if inside(from) && !inside(to) {
                found.push(format!("leaf {leaf} imports {} ({place})", to.join("::")));
            }
        }
    }
    found
}

/// The modules of the crate under `src`, and where each refers to another.
fn imports(src: &Path) -> (BTreeSet<ModulePath>, Evidence) {
    let modules = read_modules(src, src);
    let known: BTreeSet<ModulePath> = modules.iter().map(|m| m.path.clone()).collect();
    let mut evidence = Evidence::new();
    for module in &modules {
        for (line, reference) in references(&module.path, &module.text) {
            if let Some(target) = resolve(&known, &reference)
                && target != module.path
            {
                evidence
                    .entry((module.path.clone(), target))
                    .or_insert_with(|| format!("{}:{line}", module.file));
            }
        }
    }
    (known, evidence)
}

struct Module {
    path: ModulePath,
    file: String,
    text: String,
}

fn read_modules(root: &Path, dir: &Path) -> Vec<Module> {
    let mut modules = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(root).expect("under the root");
        if path.is_dir() {
            // Binaries (`src/bin`) are crates of their own.
            if relative != Path::new("bin") {
                modules.extend(read_modules(root, &path));
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let mut segments: ModulePath = relative
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if segments.last().is_some_and(|last| last == "mod") {
            segments.pop();
        }
        if segments == ["lib"] || segments == ["main"] {
            continue; // the crate root declares modules; it is not one of them
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        modules.push(Module {
            path: segments,
            file: relative.display().to_string(),
            text,
        });
    }
    modules
}

/// Each `crate::`/`super::`/`self::` path of `text` as absolute module-path candidates, with
/// the line it is on. `use` groups (`crate::{a, b::{c, d}}`) are expanded.
fn references(here: &[String], text: &str) -> Vec<(usize, ModulePath)> {
    let code = strip_comments_and_strings(text);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let at_word_start = index == 0 || !is_ident(bytes[index - 1]);
        let rest = &code[index..];
        let base: Option<(usize, ModulePath)> = if !at_word_start {
            None
        } else if rest.starts_with("crate::") {
            Some((7, Vec::new()))
        } else if rest.starts_with("super::") {
            here.len()
                .checked_sub(1)
                .map(|parent| (7, here[..parent].to_vec()))
        } else if rest.starts_with("self::") {
            Some((6, here.to_vec()))
        } else {
            None
        };
        let Some((skip, mut base)) = base else {
            index += 1;
            continue;
        };
        let line = code[..index].matches('\n').count() + 1;
        let mut tail = &code[index + skip..];
        // `super::super::…`
        while let Some(next) = tail.strip_prefix("super::") {
            base.pop();
            tail = next;
        }
        let (tree, used) = use_tree(tail);
        for path in expand(&base, tree) {
            found.push((line, path));
        }
        index += skip + used.max(1);
    }
    found
}

/// The path or `{…}` group at the start of `text`, and how many bytes it spans.
fn use_tree(text: &str) -> (&str, usize) {
    let mut depth = 0usize;
    for (offset, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return (&text[..offset], offset),
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&text[..=offset], offset + 1);
                }
            }
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                return (&text[..offset], offset);
            }
            _ => {}
        }
    }
    (text, text.len())
}

fn expand(base: &[String], tree: &str) -> Vec<ModulePath> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let prefix: Vec<String> = segments(&tree[..open]);
        let inner = tree[open + 1..].trim_end().trim_end_matches('}');
        let mut base = base.to_vec();
        base.extend(prefix);
        let mut out = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (offset, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    out.extend(expand(&base, &inner[start..offset]));
                    start = offset + 1;
                }
                _ => {}
            }
        }
        out.extend(expand(&base, &inner[start..]));
        return out;
    }
    let mut path = base.to_vec();
    path.extend(segments(tree));
    vec![path]
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
        .map(|s| s.split_whitespace().next().unwrap_or(s).to_owned())
        .collect()
}

/// The longest known module that `path` starts with.
fn resolve(known: &BTreeSet<ModulePath>, path: &[String]) -> Option<ModulePath> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|candidate| known.contains(candidate))
}

type Graph = BTreeMap<ModulePath, BTreeMap<ModulePath, String>>;

/// The graph of `evidence` after mapping each module through `node` (`None`: left out).
fn collapse<'a>(
    evidence: &'a Evidence,
    node: impl Fn(&'a ModulePath) -> Option<&'a [String]>,
) -> Graph {
    let mut graph = Graph::new();
    for ((from, to), place) in evidence {
        if let (Some(a), Some(b)) = (node(from), node(to))
            && a != b
        {
            graph
                .entry(a.to_vec())
                .or_default()
                .entry(b.to_vec())
                .or_insert_with(|| place.clone());
        }
    }
    graph
}

/// One line per strongly connected component of more than one module, naming each import
/// inside it.
fn report(scope: &str, graph: &Graph) -> Vec<String> {
    strongly_connected(graph)
        .into_iter()
        .map(|component| {
            let edges: Vec<String> = component
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|(to, _)| component.contains(*to))
                        .map(move |(to, place)| {
                            format!("{} -> {} ({place})", from.join("::"), to.join("::"))
                        })
                })
                .collect();
            format!("cycle among {scope}: {}", edges.join("; "))
        })
        .collect()
}

/// Tarjan's algorithm; components of one node are left out.
fn strongly_connected(graph: &Graph) -> Vec<BTreeSet<ModulePath>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g ModulePath, usize>,
        low: BTreeMap<&'g ModulePath, usize>,
        stack: Vec<&'g ModulePath>,
        found: Vec<BTreeSet<ModulePath>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g ModulePath) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(member) = self.stack.pop() {
                    component.insert(member.clone());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `text` with comments and the contents of string and char literals blanked out (newlines
/// kept, so line numbers still hold). Long on purpose: one scanner whose branches (one per kind
/// of token) share the cursor, which split into functions would be passed through every one.
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
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
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(chars[i - 1] as u8))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                out.push(blank(chars[j]));
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{…}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_crate_has_no_import_cycle() {
        let found = cycles(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    }

    #[test]
    fn this_crate_has_leaves_that_import_nothing_of_it() {
        let leaves = LEAVES
            .iter()
            .find(|(package, _)| *package == env!("CARGO_PKG_NAME"))
            .map_or(&[][..], |(_, leaves)| *leaves);
        let found = leaf_imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), leaves);
        assert!(
            found.is_empty(),
            "leaves that import:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn a_leaf_may_use_its_own_children_only() {
        let path = |p: &str| p.split("::").map(str::to_owned).collect::<ModulePath>();
        let known: BTreeSet<ModulePath> = ["a", "a::x", "b", "c"].map(path).into();
        let mut evidence = Evidence::new();
        evidence.insert((path("a"), path("a::x")), "a.rs:2".into());
        evidence.insert((path("a::x"), path("b")), "a/x.rs:3".into());
        evidence.insert((path("c"), path("a")), "c.rs:1".into());
        assert_eq!(
            report_leaves(&known, &evidence, &["a", "c", "gone"]),
            [
                "leaf a imports b (a/x.rs:3)",
                "leaf c imports a (c.rs:1)",
                "gone is listed as a leaf but is no module of the crate",
            ]
        );
    }

    #[test]
    fn reads_groups_relative_paths_and_skips_strings() {
        let here = ["queue".to_owned(), "worker".to_owned()];
        let text = "use crate::{a::b, c::{d, e::F}};\nuse super::routes;\n// crate::x\nlet s = \"crate::y\";\nlet c = '\"'; crate::z::f();";
        let paths: Vec<(usize, String)> = references(&here, text)
            .into_iter()
            .map(|(line, path)| (line, path.join("::")))
            .collect();
        let expected = [
            (1, "a::b"),
            (1, "c::d"),
            (1, "c::e::F"),
            (2, "queue::routes"),
            (5, "z::f"),
        ];
        assert_eq!(
            paths,
            expected
                .map(|(line, path)| (line, path.to_owned()))
                .to_vec()
        );
    }

    #[test]
    fn finds_a_cycle_and_names_its_imports() {
        let mut evidence = Evidence::new();
        let path = |p: &str| p.split("::").map(str::to_owned).collect::<ModulePath>();
        evidence.insert((path("a::x"), path("b")), "a/x.rs:3".into());
        evidence.insert((path("b"), path("a")), "b.rs:7".into());
        evidence.insert((path("b"), path("c")), "b.rs:8".into());
        let found = report("top-level modules", &collapse(&evidence, |m| m.get(..1)));
        assert_eq!(
            found,
            ["cycle among top-level modules: a -> b (a/x.rs:3); b -> a (b.rs:7)"]
        );
    }
}
