//! Reading the library's sources: the module files (following `mod` declarations) and,
//! in each, the paths it writes and the modules it declares. A small tokenizer, not a Rust
//! parser: it knows comments, strings, character literals, lifetimes, attributes, `use`
//! trees and inline modules, which is all that paths need.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Str(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// The tokens of a Rust source that matter for paths, each with its line. Comments,
/// lifetimes, character and number literals are dropped; strings are kept whole (for
/// `#[path = ".."]`) and never read as paths.
pub fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || (matches!(ch, 'r' | 'b') && raw_or_byte_string(&c, i)) {
            let start_line = line;
            let (s, end) = string_literal(&c, i);
            line += s.matches('\n').count();
            out.push((Tok::Str(s), start_line));
            i = end;
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ident_char(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            if !ch.is_ascii_digit() {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == ':' && next == Some(':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Whether `c[i..]` starts a raw string (`r"`, `r#"`), a byte string (`b"`) or a raw byte
/// string, rather than an identifier beginning with r or b.
fn raw_or_byte_string(c: &[char], i: usize) -> bool {
    if i > 0 && (c[i - 1] == '_' || c[i - 1].is_alphanumeric()) {
        return false;
    }
    let mut j = i + 1;
    if c[i] == 'b' && c.get(j) == Some(&'r') {
        j += 1;
    }
    if c[i] == 'b' && j == i + 1 {
        return c.get(j) == Some(&'"');
    }
    while c.get(j) == Some(&'#') {
        j += 1;
    }
    c.get(j) == Some(&'"')
}

/// The text of the string literal at `c[i..]` and the index after it.
fn string_literal(c: &[char], mut i: usize) -> (String, usize) {
    let mut raw = false;
    while c[i] != '"' && c[i] != '#' {
        raw |= c[i] == 'r';
        i += 1;
    }
    let mut hashes = 0;
    while c[i] == '#' {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    let mut s = String::new();
    while i < c.len() {
        if !raw && c[i] == '\\' {
            s.push(c[i]);
            s.extend(c.get(i + 1));
            i += 2;
            continue;
        }
        if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
            return (s, i + 1 + hashes);
        }
        s.push(c[i]);
        i += 1;
    }
    (s, i)
}

/// A path as written, with the inline module it was written in and its line.
#[derive(Debug, Clone)]
pub struct PathRef {
    /// Inline modules around the path, outermost first (`["tests"]`).
    pub scope: Vec<String>,
    pub segments: Vec<String>,
    pub line: usize,
}

/// What one file says: the paths it writes, and the modules it declares.
#[derive(Debug, Default)]
pub struct Parsed {
    pub paths: Vec<PathRef>,
    /// `mod x;` at file level, with its `#[path]` if any and whether it is test code.
    pub declared: Vec<(String, Option<String>, bool)>,
    /// Every module declared (`mod x;` or `mod x { .. }`), by the inline scope it is in.
    pub children: BTreeSet<(Vec<String>, String)>,
    /// The names `use` brings into each inline scope, with the paths they stand for.
    pub imports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

pub fn parse(src: &str) -> Parsed {
    let t = tokens(src);
    let mut p = Parsed::default();
    // Inline modules open around the current token, with the brace depth they close at
    // and whether they are test code.
    let mut scope: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let ident = |k: usize| match t.get(k) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let is = |k: usize, tok: &Tok| t.get(k).map(|(x, _)| x) == Some(tok);
    let names = |scope: &[(String, usize, bool)]| scope.iter().map(|(n, ..)| n.clone()).collect();
    let in_test = |scope: &[(String, usize, bool)]| scope.iter().any(|(.., test)| *test);
    while i < t.len() {
        match &t[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if scope.last().is_some_and(|(_, d, _)| *d == depth) {
                    scope.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" && i + 2 < t.len() => {
                if let Some(name) = ident(i + 1) {
                    p.children.insert((names(&scope), name.to_owned()));
                    let (path, test) = attributes(&t[..i]);
                    if is(i + 2, &Tok::Punct(';')) && scope.is_empty() {
                        p.declared.push((name.to_owned(), path, test));
                    } else if is(i + 2, &Tok::Punct('{')) {
                        scope.push((name.to_owned(), depth + 1, test || in_test(&scope)));
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                let end = (i..t.len())
                    .find(|&k| is(k, &Tok::Punct(';')))
                    .unwrap_or(t.len());
                let mut found = Vec::new();
                use_tree(&t[i + 1..end], &[], &mut found);
                for (segments, name) in found.into_iter().filter(|_| !in_test(&scope)) {
                    if let Some(name) = name {
                        p.imports.insert((names(&scope), name), segments.clone());
                    }
                    p.paths.push(PathRef {
                        scope: names(&scope),
                        segments,
                        line: t[i].1,
                    });
                }
                i = end;
                continue;
            }
            Tok::Ident(w)
                if is(i + 1, &Tok::PathSep)
                    && !(i > 0 && is(i - 1, &Tok::PathSep))
                    && !in_test(&scope) =>
            {
                let mut segments = vec![w.clone()];
                let mut k = i + 1;
                while is(k, &Tok::PathSep) {
                    match ident(k + 1) {
                        Some(s) => segments.push(s.to_owned()),
                        None => break,
                    }
                    k += 2;
                }
                p.paths.push(PathRef {
                    scope: names(&scope),
                    segments,
                    line: t[i].1,
                });
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    p
}

/// What the attributes right before an item (whose tokens end `before`) say: its
/// `#[path = ".."]`, and whether it is `#[cfg(test)]`.
fn attributes(before: &[(Tok, usize)]) -> (Option<String>, bool) {
    let (mut path, mut test) = (None, false);
    let mut k = before.len();
    // Walk back over `#[...]` groups and visibility (`pub`, `pub(crate)`).
    while k > 0 {
        match &before[k - 1].0 {
            Tok::Punct(']') => {
                let Some(open) = (0..k).rev().find(|&j| before[j].0 == Tok::Punct('[')) else {
                    break;
                };
                if open == 0 || before[open - 1].0 != Tok::Punct('#') {
                    break;
                }
                let inside: Vec<&Tok> = before[open + 1..k - 1].iter().map(|(t, _)| t).collect();
                match inside.as_slice() {
                    [Tok::Ident(a), Tok::Punct('='), Tok::Str(s)] if a == "path" => {
                        path = Some(s.clone());
                    }
                    [Tok::Ident(a), Tok::Punct('('), Tok::Ident(b), Tok::Punct(')')]
                        if a == "cfg" && b == "test" =>
                    {
                        test = true;
                    }
                    _ => {}
                }
                k = open - 1;
            }
            Tok::Ident(w) if w == "pub" => k -= 1,
            Tok::Punct(')') => match (0..k).rev().find(|&j| before[j].0 == Tok::Punct('(')) {
                Some(open) => k = open,
                None => break,
            },
            _ => break,
        }
    }
    (path, test)
}

/// Expands a `use` tree (`crate::a::{self, b::C as D, d::*}`) into its paths, each with
/// the name it brings into scope (none for a glob).
fn use_tree(t: &[(Tok, usize)], prefix: &[String], out: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut segments = prefix.to_vec();
    let mut name = None;
    let mut i = 0;
    if matches!(t.first(), Some((Tok::PathSep, _))) {
        return; // `::name`: another crate
    }
    while i < t.len() {
        match &t[i].0 {
            Tok::Ident(w) if w == "as" => {
                if let Some((Tok::Ident(alias), _)) = t.get(i + 1) {
                    name = Some(alias.clone());
                }
                break;
            }
            // `a::{self, ..}` names `a` itself.
            Tok::Ident(w) if w == "self" && !segments.is_empty() => {}
            Tok::Ident(w) => {
                segments.push(w.clone());
                name = Some(w.clone());
            }
            Tok::PathSep => {}
            Tok::Punct('*') => {
                name = None;
                break;
            }
            Tok::Punct('{') => {
                // Split the group at its top-level commas.
                let mut level = 0;
                let mut start = i + 1;
                for k in i + 1..t.len() {
                    match t[k].0 {
                        Tok::Punct('{') => level += 1,
                        Tok::Punct('}') if level > 0 => level -= 1,
                        Tok::Punct(',') | Tok::Punct('}') if level == 0 => {
                            if k > start {
                                use_tree(&t[start..k], &segments, out);
                            }
                            start = k + 1;
                            if t[k].0 == Tok::Punct('}') {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
                return;
            }
            _ => break,
        }
        i += 1;
    }
    if !segments.is_empty() {
        out.push((segments, name));
    }
}

/// A module file: its name (`access::endpoint`; empty for the crate root) and its text.
pub struct ModuleFile {
    pub name: Vec<String>,
    pub file: PathBuf,
    pub text: String,
    /// Compiled for tests only (`#[cfg(test)] mod tests;`, or inside such a module).
    pub test: bool,
}

/// Every module file of the crate whose root is `root`, following `mod` declarations.
pub fn modules(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Vec<ModuleFile> {
    let mut out = Vec::new();
    let mut todo = VecDeque::from([(Vec::new(), root.to_path_buf(), false)]);
    while let Some((name, file, test)) = todo.pop_front() {
        let text = read(&file).unwrap_or_else(|| panic!("cannot read {}", file.display()));
        let dir = file.parent().unwrap().to_path_buf();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let owns_dir = name.is_empty() || stem == "mod";
        for (child, path, child_test) in parse(&text).declared {
            let mut child_name = name.clone();
            child_name.push(child.clone());
            let child_file = match path {
                Some(p) => dir.join(p),
                None => {
                    let base = if owns_dir {
                        dir.clone()
                    } else {
                        dir.join(&stem)
                    };
                    let flat = base.join(format!("{child}.rs"));
                    if read(&flat).is_some() {
                        flat
                    } else {
                        base.join(&child).join("mod.rs")
                    }
                }
            };
            todo.push_back((child_name, child_file, test || child_test));
        }
        out.push(ModuleFile {
            name,
            file,
            text,
            test,
        });
    }
    out
}
