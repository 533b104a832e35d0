//! Znode path validation and splitting, with ZooKeeper's rules
//! (`PathUtils.validatePath`): absolute, no empty, `.` or `..` segments, no
//! trailing slash, no NUL or control characters.

use super::error::ZnodeError;

/// Checks `path` as ZooKeeper does. A sequential create validates its path with a
/// digit appended, so `/queue/` is a valid prefix for `/queue/0000000001`.
pub fn validate(path: &str, sequential: bool) -> Result<(), ZnodeError> {
    let invalid = |reason: &'static str| ZnodeError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("path must not be empty"));
    }
    if !path.starts_with('/') {
        return Err(invalid("path must start with /"));
    }
    if let Some(c) = path.chars().find(|c| is_forbidden(*c)) {
        return Err(if c == '\0' {
            invalid("path must not contain NUL")
        } else {
            invalid("path must not contain control characters")
        });
    }
    // The sequence number completes a sequential path's last segment.
    let completed = if sequential {
        format!("{path}0")
    } else {
        path.to_owned()
    };
    if completed == "/" {
        return Ok(());
    }
    if completed.ends_with('/') {
        return Err(invalid("path must not end with /"));
    }
    for segment in completed[1..].split('/') {
        match segment {
            "" => return Err(invalid("path must not contain empty segments (//)")),
            "." | ".." => return Err(invalid("path must not contain . or .. segments")),
            _ => {}
        }
    }
    Ok(())
}

/// ZooKeeper rejects NUL, ASCII control characters and a few Unicode ranges
/// (C1 controls, the private-use area and the specials block); surrogates cannot
/// occur in a Rust `str`.
fn is_forbidden(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{001f}'
        | '\u{007f}'..='\u{009f}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}')
}

/// Splits a valid non-root path into its parent path and last segment.
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(p: &str) -> bool {
        validate(p, false).is_ok()
    }

    #[test]
    fn accepts_zookeeper_paths() {
        for p in [
            "/", "/a", "/a/b", "/a-b_c.d", "/a/.b", "/a/..b", "/é/ü", "/a b",
        ] {
            assert!(ok(p), "{p} should be valid");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/\u{fff5}",
        ] {
            assert!(!ok(p), "{p:?} should be invalid");
        }
    }

    #[test]
    fn sequential_allows_trailing_slash() {
        assert!(validate("/q/", true).is_ok());
        assert!(validate("/", true).is_ok());
        assert!(validate("/q/item-", true).is_ok());
        assert!(validate("/q//", true).is_err());
        assert!(validate("/q/", false).is_err());
    }

    #[test]
    fn error_names_the_reason() {
        let err = validate("/a//b", false).unwrap_err();
        assert_eq!(
            err,
            ZnodeError::InvalidPath {
                path: "/a//b".into(),
                reason: "path must not contain empty segments (//)"
            }
        );
    }

    #[test]
    fn split_and_join_round_trip() {
        assert_eq!(split("/a"), ("/", "a"));
        assert_eq!(split("/a/b/c"), ("/a/b", "c"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    proptest! {
        #[test]
        fn valid_paths_split_and_join(segments in prop::collection::vec("[a-z0-9_-]{1,8}", 1..5)) {
            let path = format!("/{}", segments.join("/"));
            prop_assert!(ok(&path));
            let (parent, name) = split(&path);
            prop_assert!(ok(parent));
            prop_assert_eq!(join(parent, name), path);
        }

        #[test]
        fn validation_never_panics(path in "\\PC{0,20}") {
            let _ = validate(&path, false);
            let _ = validate(&path, true);
        }
    }
}
