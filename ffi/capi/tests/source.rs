//! A scan of `src/`: every `extern "C" fn` is an export (`#[no_mangle]`,
//! `pub unsafe`, a `# Safety` section in its docs) whose body starts with
//! the `ffi!` boundary, so that no panic, fork or NULL slips past it; and
//! nothing is `#[no_mangle]` that is not such a function. Test code (files
//! under `src/tests/`, and `#[cfg(test)] mod tests` at the end of a file)
//! is compiled only into the unit tests: its `extern "C"` functions (a
//! panicking one, handlers for the serve functions) are not exports, and
//! are not checked. Nor is a private `extern "C" fn` that libmq hands to C
//! by pointer (the `pthread_atfork` child handler): C cannot call it by
//! name, and it must not be `#[no_mangle]`.

use std::path::Path;

fn sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

/// The body of the function whose signature starts at `at`: what follows
/// its opening brace, comments and blank space skipped.
fn body_start(text: &str, at: usize) -> &str {
    let open = text[at..].find('{').map_or(text.len(), |i| at + i + 1);
    let mut rest = &text[open..];
    loop {
        rest = rest.trim_start();
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |n| &rest[n..]);
        } else {
            return rest;
        }
    }
}

#[test]
fn every_export_goes_through_the_ffi_macro() {
    let mut exports = 0;
    let mut problems = Vec::new();
    let mut callbacks = 0;
    for (file, text) in sources() {
        if file.contains("/src/tests/") {
            continue;
        }
        let text = text
            .split_once("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |(code, _)| code);
        for (at, _) in text.match_indices("extern \"C\" fn ") {
            let name: String = text[at + 14..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            if !text[line_start..at].contains("pub ") {
                callbacks += 1;
                continue;
            }
            let before = &text[..line_start];
            let attrs: Vec<&str> = before
                .lines()
                .rev()
                .take_while(|l| {
                    let l = l.trim_start();
                    l.starts_with("#[") || l.starts_with("///")
                })
                .collect();
            if !body_start(text, at).starts_with("ffi!") {
                problems.push(format!("{file}: {name} does not start with ffi!"));
            }
            if !text[line_start..at].contains("pub unsafe") {
                problems.push(format!("{file}: {name} is not `pub unsafe extern \"C\"`"));
            }
            if !attrs.iter().any(|l| l.trim() == "#[no_mangle]") {
                problems.push(format!("{file}: {name} has no #[no_mangle]"));
            }
            if !attrs.iter().any(|l| l.trim() == "/// # Safety") {
                problems.push(format!("{file}: {name} has no `# Safety` section"));
            }
            exports += 1;
        }
        let no_mangle = text.matches("#[no_mangle]").count();
        let externs = text.matches("pub unsafe extern \"C\" fn ").count();
        if no_mangle != externs {
            problems.push(format!(
                "{file}: {no_mangle} #[no_mangle] for {externs} extern \"C\" functions"
            ));
        }
    }
    assert!(exports > 50, "found only {exports} exports");
    assert!(callbacks <= 1, "{callbacks} private extern \"C\" functions");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
