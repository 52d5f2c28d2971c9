//! `docs/configuration.md` is the one list of Pulso's environment variables. These tests keep it
//! honest: every variable `Config::from_lookup` asks for has a `shared::config` row, every such
//! row names a variable it asks for, and every other row names a variable some file of the
//! repository mentions (its reader, or the script that sets it for a reader outside Pulso).
//!
//! The variables are recorded from the lookup itself rather than listed by hand, so a new read
//! anywhere in the configuration (whichever file it moves to) needs its line in the doc.

use super::Config;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/configuration.md";
/// The reader this page marks in the "read by" column of the rows the first two tests check.
const CONFIG_READER: &str = "`shared::config`";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every name the configuration asks its lookup for. Some reads only happen past a check (the
/// issuer and audience once a verification method is valid), so it runs over an empty
/// environment and the two valid minimal ones (HS256, Cognito) and keeps the union.
fn names_config_reads() -> BTreeSet<String> {
    let database = ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso");
    let environments: [&[(&str, &str)]; 3] = [
        &[],
        &[
            database,
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
        &[
            database,
            ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
            ("COGNITO_CLIENT_ID", "client"),
        ],
    ];
    let asked = RefCell::new(BTreeSet::new());
    for environment in environments {
        let _ = Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            environment
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        });
    }
    let asked = asked.into_inner();
    assert!(
        asked.contains("DATABASE_URL") && asked.contains("JWT_ISSUER"),
        "the recording lookup saw too little: {asked:?}"
    );
    asked
}

struct Row {
    line: usize,
    read_by: String,
}

/// The doc's table rows, by variable: `| `NAME` | default | accepted | read by | what for |`.
/// A row whose first cell is not exactly one backticked name fails, and so does a variable with
/// two rows: one home per variable.
fn documented() -> BTreeMap<String, Row> {
    let path = workspace().join(DOC);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut rows = BTreeMap::new();
    let mut read_by_column = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !line.starts_with('|') || cells.len() < 3 {
            read_by_column = None;
            continue;
        }
        if cells[1] == "variable" {
            read_by_column = cells.iter().position(|cell| *cell == "read by");
            continue;
        }
        if cells[1].starts_with("---") {
            continue;
        }
        let column = read_by_column
            .unwrap_or_else(|| panic!("{DOC}:{line_number}: a table without a `read by` column"));
        let name = cells[1]
            .strip_prefix('`')
            .and_then(|cell| cell.strip_suffix('`'))
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .unwrap_or_else(|| {
                panic!("{DOC}:{line_number}: the first cell must be one `VARIABLE`, got {cells:?}")
            });
        let row = Row {
            line: line_number,
            read_by: cells.get(column).copied().unwrap_or_default().to_owned(),
        };
        if let Some(first) = rows.insert(name.to_owned(), row) {
            panic!(
                "{DOC}:{line_number}: {name} already has a row at line {}",
                first.line
            );
        }
    }
    rows
}

#[test]
fn every_variable_the_configuration_reads_is_documented() {
    let rows = documented();
    let missing: Vec<_> = names_config_reads()
        .into_iter()
        .filter(|name| {
            rows.get(name)
                .is_none_or(|row| !row.read_by.contains(CONFIG_READER))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "shared::config reads {missing:?}, which {DOC} does not list as read by {CONFIG_READER}"
    );
}

#[test]
fn every_documented_configuration_variable_is_read() {
    let read = names_config_reads();
    let stale: Vec<_> = documented()
        .into_iter()
        .filter(|(name, row)| row.read_by.contains(CONFIG_READER) && !read.contains(name))
        .map(|(name, row)| format!("{name} (line {})", row.line))
        .collect();
    assert!(
        stale.is_empty(),
        "{DOC} says {CONFIG_READER} reads {stale:?}, but it never asks for them"
    );
}

#[test]
fn every_other_documented_variable_is_mentioned_in_the_repository() {
    let root = workspace();
    let mut sources = String::new();
    for top in [
        "shared",
        "functions",
        "infra",
        "tests",
        ".ci",
        "template.yaml",
    ] {
        collect_text(&root.join(top), &mut sources);
    }
    let unknown: Vec<_> = documented()
        .into_iter()
        .filter(|(name, row)| !row.read_by.contains(CONFIG_READER) && !mentions(&sources, name))
        .map(|(name, row)| format!("{name} (line {})", row.line))
        .collect();
    assert!(
        unknown.is_empty(),
        "{DOC} lists {unknown:?}, which no file of the repository mentions"
    );
}

/// Whether `text` has `name` as a whole word: `WS_URL` is not mentioned by `WS_URLS`.
fn mentions(text: &str, name: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(part_of_name)
            && !text[at + name.len()..]
                .chars()
                .next()
                .is_some_and(part_of_name)
    })
}

/// The text of every file under `path`, except build output and this file (which names
/// variables only to test them).
fn collect_text(path: &Path, into: &mut String) {
    if path.ends_with("target") || path.ends_with("shared/src/config/documented.rs") {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            collect_text(&entry, into);
        }
    } else if let Ok(bytes) = std::fs::read(path) {
        into.push_str(&String::from_utf8_lossy(&bytes));
        into.push('\n');
    }
}
