//! The library's modules import each other without cycles.
//!
//! One node per module file (`access::endpoint`, `authn`, `gateway::config`; the crate
//! root is `crate`), found by following `mod` declarations from `src/lib.rs`.
//! An edge A -> B when A's file names an item of B through a `crate::`, `super::` or
//! `self::` path, or through a child module it declares, in a `use` or inline. The module
//! a path reaches is the longest prefix of it that is a module file, so naming an item
//! a parent module defines or re-exports is an edge to that parent; an inline module
//! (`mod helpers { .. }`) belongs to its file. Declaring `mod x;` is not an edge, and nor
//! are comments (doc links included) or string literals. Test code (`#[cfg(test)]`
//! modules, inline or in files of their own) is left out: a test may set its module up
//! with the modules above it.
//!
//! A cycle means neither module can be understood, tested or moved without the other; the
//! fix is to move what both need to the module that owns it. With `MODULE_GRAPH_EDGES` set
//! (and `--nocapture`) the test prints every edge with the reference behind it.

mod source;

use source::{modules, parse, ModuleFile};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// An edge and where it was seen first.
#[derive(Debug, Clone)]
struct Evidence {
    line: usize,
    path: String,
}

type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

fn display(name: &[String]) -> String {
    if name.is_empty() {
        "crate".to_owned()
    } else {
        name.join("::")
    }
}

/// The graph of `files`: node names are module paths, `crate` for the root.
fn graph(files: &[ModuleFile]) -> Graph {
    let known: BTreeSet<Vec<String>> = files.iter().map(|f| f.name.clone()).collect();
    let mut g = Graph::new();
    for f in files.iter().filter(|f| !f.test) {
        let from = display(&f.name);
        g.entry(from.clone()).or_default();
        let parsed = parse(&f.text);
        for r in &parsed.paths {
            let mut here = f.name.clone();
            here.extend(r.scope.iter().cloned());
            // A name a `use` brought in (`records::get` after `use crate::store::access as
            // records`) stands for its path; looked up from the innermost scope outwards,
            // since test modules take their parent's names with `use super::*`.
            let mut written = r.segments.clone();
            let imported = (0..=r.scope.len()).rev().find_map(|n| {
                parsed
                    .imports
                    .get(&(r.scope[..n].to_vec(), written[0].clone()))
            });
            if let Some(full) = imported.filter(|full| **full != r.segments) {
                let mut full = full.clone();
                full.extend(written.drain(1..));
                written = full;
            }
            let mut segments = written.iter().peekable();
            let mut abs = match segments.peek().map(|s| s.as_str()) {
                Some("crate") => {
                    segments.next();
                    Vec::new()
                }
                Some("self") => {
                    segments.next();
                    here.clone()
                }
                Some("super") => {
                    let mut at = here.clone();
                    while segments.peek().map(|s| s.as_str()) == Some("super") {
                        segments.next();
                        at.pop();
                    }
                    at
                }
                Some(first)
                    if parsed
                        .children
                        .contains(&(r.scope.clone(), first.to_owned())) =>
                {
                    here.clone()
                }
                _ => continue, // another crate, a type, or a name a `use` brought in
            };
            abs.extend(segments.cloned());
            let to = (0..=abs.len())
                .rev()
                .map(|n| &abs[..n])
                .find(|p| known.contains(*p))
                .map(display)
                .unwrap_or_else(|| "crate".to_owned());
            if to != from {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(Evidence {
                        line: r.line,
                        path: r.segments.join("::"),
                    });
            }
        }
    }
    g
}

/// The strongly connected components of `g` with more than one node (Tarjan), each sorted.
fn cyclic_components(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = g
        .iter()
        .flat_map(|(k, e)| std::iter::once(k.as_str()).chain(e.keys().map(|k| k.as_str())))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// A shortest cycle through `start` inside `component`, as its nodes in order.
fn cycle_through(g: &Graph, component: &[String], start: &str) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(|s| s.as_str()).collect();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in g.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if w == start {
                let mut cycle = vec![v.to_owned()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    cycle.push(at.to_owned());
                }
                cycle.reverse();
                return cycle;
            }
            if inside.contains(w) && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

/// One line per cycle (each found once, from each node of a cyclic component), with the
/// reference behind every edge.
fn report(g: &Graph, files: &BTreeMap<String, PathBuf>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut lines = Vec::new();
    for component in cyclic_components(g) {
        for start in &component {
            let cycle = cycle_through(g, &component, start);
            // The same cycle found from another of its nodes: compare rotations.
            let min = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
            let canonical: Vec<String> =
                cycle[min..].iter().chain(&cycle[..min]).cloned().collect();
            if !seen.insert(canonical.clone()) {
                continue;
            }
            let mut line = String::from("cycle:");
            for (k, from) in canonical.iter().enumerate() {
                let to = &canonical[(k + 1) % canonical.len()];
                let e = &g[from][to];
                let file = files
                    .get(from)
                    .map(|f| f.display().to_string())
                    .unwrap_or_default();
                line += &format!("\n  {from} -> {to}  ({file}:{}: {})", e.line, e.path);
            }
            lines.push(line);
        }
    }
    lines
}

#[test]
fn the_library_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src.join("lib.rs"), &|p| std::fs::read_to_string(p).ok());
    // Every source file of the library is a module of it (the binaries are crates of their
    // own): a file this walk missed would escape the check.
    let found: BTreeSet<PathBuf> = files.iter().map(|f| f.file.clone()).collect();
    let mut missed = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path != src.join("bin") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !found.contains(&path) {
                missed.push(path);
            }
        }
    }
    assert!(missed.is_empty(), "files no module declares: {missed:?}");
    assert!(files.len() > 100, "only {} modules found", files.len());

    let g = graph(&files);
    let names: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|f| {
            let file = f.file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
            (display(&f.name), file.to_path_buf())
        })
        .collect();
    let cycles = report(&g, &names);
    if std::env::var_os("MODULE_GRAPH_EDGES").is_some() {
        for (from, tos) in &g {
            for (to, e) in tos {
                println!("EDGE {from} -> {to} ({}: {})", e.line, e.path);
            }
        }
    }
    for c in &cycles {
        eprintln!("{c}");
    }
    assert!(
        cycles.is_empty(),
        "{} import cycles between modules:\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

/// A graph from `from -> to` pairs.
fn synthetic(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (from, to) in edges {
        g.entry(to.to_string()).or_default();
        g.entry(from.to_string()).or_default().insert(
            to.to_string(),
            Evidence {
                line: 1,
                path: format!("crate::{to}::Item"),
            },
        );
    }
    g
}

#[test]
fn the_cycle_finder_finds_every_cycle_and_nothing_else() {
    let acyclic = synthetic(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")]);
    assert!(cyclic_components(&acyclic).is_empty());
    assert!(report(&acyclic, &BTreeMap::new()).is_empty());

    let g = synthetic(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("e", "f"),
        ("f", "e"),
        ("g", "a"),
    ]);
    assert_eq!(
        cyclic_components(&g),
        vec![vec!["a", "b", "c"], vec!["e", "f"]]
    );
    let lines = report(&g, &BTreeMap::new());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("a -> b") && lines[0].contains("c -> a"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("e -> f") && lines[1].contains("f -> e"),
        "{}",
        lines[1]
    );
}

#[test]
fn references_in_code_become_edges_and_comments_do_not() {
    let sources = BTreeMap::from([
        (
            "src/lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod proto { include!(\"x.rs\"); }\n",
        ),
        (
            "src/a/mod.rs",
            "//! See [`crate::c::Thing`].\nmod inner;\npub use self::inner::Inner;\n\
             pub fn f() -> crate::proto::Msg { let _ = \"crate::c::x\"; todo!() }\n",
        ),
        (
            "src/a/inner.rs",
            "use super::super::b::{self, deep::{Deep, other::*}};\npub struct Inner<'a>(&'a u8);\n\
             mod helpers {\n    use super::*;\n    fn t() { let c = '{'; super::super::f(); }\n}\n\
             #[cfg(test)]\nmod tests {\n    use crate::c::x;\n    fn t() { crate::c::x(); }\n}\n",
        ),
        ("src/b/mod.rs", "pub mod deep;\n"),
        (
            "src/b/deep.rs",
            "#[path = \"elsewhere.rs\"]\nmod moved;\n#[cfg(test)]\n#[path = \"deep_tests.rs\"]\nmod tests;\n",
        ),
        ("src/b/deep_tests.rs", "use crate::a::f;\n"),
        ("src/b/elsewhere.rs", "fn g() { crate::a::f(); }\n"),
        (
            "src/c.rs",
            "/* crate::a::f() */ use crate::b as bee;\npub fn x() { bee::deep::Deep::new(); }\n",
        ),
    ]);
    let read = |p: &Path| sources.get(p.to_str().unwrap()).map(|s| s.to_string());
    let files = modules(Path::new("src/lib.rs"), &read);
    let mut names: Vec<String> = files.iter().map(|f| display(&f.name)).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a",
            "a::inner",
            "b",
            "b::deep",
            "b::deep::moved",
            "b::deep::tests",
            "c",
            "crate"
        ]
    );
    let g = graph(&files);
    let edges = |from: &str| -> Vec<&str> { g[from].keys().map(|s| s.as_str()).collect() };
    assert_eq!(edges("a"), ["a::inner", "crate"]);
    // `super::super::f()` inside `mod helpers` is `a::f`: an edge to `a`. Test code makes
    // no edges (`crate::c::x` in `mod tests`, the file `deep_tests.rs`).
    assert_eq!(edges("a::inner"), ["a", "b", "b::deep"]);
    assert!(!g.contains_key("b::deep::tests"));
    assert_eq!(edges("b::deep::moved"), ["a"]);
    // A name a `use` brought in stands for its path.
    assert_eq!(edges("c"), ["b", "b::deep"]);
    assert!(edges("b").is_empty() && edges("b::deep").is_empty());
    let cycles = report(&g, &BTreeMap::new());
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("a -> a::inner") && cycles[0].contains("a::inner -> a"));
}
