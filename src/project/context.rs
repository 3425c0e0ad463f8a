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

/// One component of a repository name, per the distribution spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (so `a_-b`, `a..b` and `a___b` are not names).
pub fn valid_image_name(name: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = name.as_bytes();
    let mut i = 0;
    loop {
        // A run of alphanumerics...
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // ...then one separator: `.`, `_`, `__` or any number of `-`.
        let sep = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        if !matches!(&name[sep..i], "." | "_" | "__") && !name[sep..i].bytes().all(|c| c == b'-') {
            return false;
        }
    }
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
        let valid = [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b-c_d__e",
        ];
        let invalid = [
            "a_-b", "a-_b", "a._b", "a..b", "a___b", "a.", "_a", "a-", "a/b", "é", "a b", "A",
        ];
        for name in valid {
            assert!(valid_image_name(name), "{name}");
        }
        for name in invalid {
            assert!(!valid_image_name(name), "{name}");
        }
    }
}
