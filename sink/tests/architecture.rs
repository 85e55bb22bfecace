//! The shape of `sink/src`: the floor uses no stage, no section imports `config`, and the stage
//! folders import one another without a circle.
//!
//! Reads every `sink/src/**/*.rs` and collects its `crate::<module>` references (outside
//! comments and test-only code: `#[cfg(test)]` items and `tests.rs` files). The wiring files
//! (`lib.rs`, `main.rs`, `server.rs`, `bench.rs`) may use everything and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that wire the stages together and may import any of them.
const WIRING: [&str; 4] = ["lib", "main", "server", "bench"];

/// The top-level module every stage may use.
const FLOOR: &str = "floor";

/// The top-level module that assembles the sections' configs.
const CONFIG: &str = "config";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`export` for `export/loki/mod.rs`).
fn top_level(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The top-level modules named as `crate::<name>` in `text`'s code: comments and test-only
/// items (`#[cfg(test)]` on an item with a `{ ... }` body, or on a `mod name;` line) left out.
fn references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            skip_item(&mut lines);
            continue;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap();
        for (at, _) in code.match_indices("crate::") {
            let preceded_by_ident = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded_by_ident {
                continue;
            }
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Skips the item after an attribute: up to its first `;` outside braces, or to the brace that
/// closes its body (braces counted over the raw text, which suffices for this crate's code).
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let mut depth = 0usize;
    let mut opened = false;
    for line in lines {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if depth == 0 && (opened || line.trim_end().ends_with(';')) {
            return;
        }
    }
}

/// Top-level module → the top-level modules its files reference (itself and wiring left out).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files in {src:?}",
        files.len()
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = top_level(&src, &file);
        let test_only = file.file_name().is_some_and(|n| n == "tests.rs");
        if WIRING.contains(&module.as_str()) || test_only {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let used = graph.entry(module.clone()).or_default();
        used.extend(references(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// A circle in `graph`, as the modules along it (first repeated last), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_floor_uses_no_stage() {
    let graph = import_graph();
    let used = &graph[FLOOR];
    assert!(used.is_empty(), "floor/ imports {used:?}");
}

#[test]
fn no_section_imports_config() {
    let graph = import_graph();
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(_, used)| used.contains(CONFIG))
        .map(|(module, _)| module)
        .collect();
    assert!(
        importers.is_empty(),
        "{importers:?} import config/ (units and URLs live in floor/)"
    );
}

#[test]
fn stage_folders_import_no_circle() {
    let graph = import_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_circle_is_found_and_printed() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c", "floor"]),
        ("c", vec!["a"]),
        ("floor", vec![]),
    ]
    .into_iter()
    .map(|(m, used)| (m.to_owned(), used.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let text = "use crate::a::X;\n// crate::z\nfoo(meshtap_crate::q); crate::b::f();\n\
                #[cfg(test)]\nmod t;\nuse crate::d;\n#[cfg(test)]\nmod tests {\n    fn f() {\n        \
                crate::c::g();\n    }\n    use crate::c;\n}\nuse crate::e;";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "d", "e"]);
}
