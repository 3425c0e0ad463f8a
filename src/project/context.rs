//! Context directory names: `NN-name` gives the declared order `NN` and the image name `name`.

/// The declared order and image name of a context directory, e.g. `01-base-dev` -> (Some(1), "base-dev").
pub fn split_dir_name(dir_name: &str) -> (Option<u32>, &str) {
    if let Some((prefix, rest)) = dir_name.split_once('-') {
        if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() {
            if let Ok(n) = prefix.parse() {
                return (Some(n), rest);
            }
        }
    }
    (None, dir_name)
}

/// Registry repository name rules (lower-case alphanumerics separated by `.`, `_`, `__` or `-`).
pub fn valid_image_name(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut prev_sep = false;
    for &c in b {
        let sep = matches!(c, b'.' | b'_' | b'-');
        if !alnum(c) && !sep {
            return false;
        }
        // `__` and runs of dashes are allowed by the spec; a `.` next to another separator is not.
        if sep && prev_sep && (c == b'.' || b.contains(&b'.')) && c != b'-' && c != b'_' {
            return false;
        }
        prev_sep = sep;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prefix() {
        assert_eq!(split_dir_name("01-base-dev"), (Some(1), "base-dev"));
        assert_eq!(split_dir_name("120-x"), (Some(120), "x"));
        assert_eq!(split_dir_name("base-dev"), (None, "base-dev"));
        assert_eq!(split_dir_name("01-"), (None, "01-"));
        assert_eq!(split_dir_name("jq"), (None, "jq"));
    }

    #[test]
    fn image_names() {
        assert!(valid_image_name("base-dev"));
        assert!(valid_image_name("a.b_c"));
        assert!(!valid_image_name("Base"));
        assert!(!valid_image_name("-x"));
        assert!(!valid_image_name("x y"));
        assert!(!valid_image_name(""));
    }
}
