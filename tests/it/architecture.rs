//! The module arrows of `docs/architecture.md` point one way: no top-level module of `src/`
//! uses one that uses it back, directly or through others. Read from the source text (every
//! `crate::NAME` outside test code), so a new cycle fails here before anyone draws it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a file without its `#[cfg(test)]` modules and test files, which may use anything.
fn production_text(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let in_tests_dir = path.components().any(|c| c.as_os_str() == "tests");
    if name == "tests.rs" || name == "properties.rs" || in_tests_dir {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.split("#[cfg(test)]").next().unwrap_or_default().to_owned())
}

/// Top-level module -> the top-level modules it names as `crate::NAME`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .expect("src")
        .flatten()
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|m| m != "lib" && m != "main" && m != "bin")
        .collect();
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut files = vec![src.join(format!("{module}.rs"))];
        if src.join(module).is_dir() {
            source_files(&src.join(module), &mut files);
        }
        let mut uses = BTreeSet::new();
        for text in files.iter().filter_map(|f| production_text(f)) {
            for (i, _) in text.match_indices("crate::") {
                let name: String =
                    text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) && name != *module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.contains_key("proxy") && graph["proxy"].contains("sigv4"), "the graph was not read: {graph:?}");
    let mut cycles = Vec::new();
    for a in graph.keys() {
        for b in graph.keys().filter(|b| a < *b) {
            if reaches(&graph, a, b) && reaches(&graph, b, a) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:?}\n{graph:#?}");
}

#[test]
fn pure_modules_use_only_pure_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    let pure = ["checksum", "glob", "policy", "proxy_protocol", "s3_request", "s3_xml", "sigv4", "credentials"];
    // `s3_xml` reports its errors as S3 errors; `error` itself depends only on pure modules.
    let allowed_shared = ["error", "body"];
    for module in pure {
        for used in &graph[module] {
            assert!(
                pure.contains(&used.as_str()) || allowed_shared.contains(&used.as_str()),
                "{module} (pure) uses {used}"
            );
        }
    }
}
