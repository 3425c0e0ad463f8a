//! Arbitrary bytes as info.edn (or VERSION) never panic: every input gives a value or located problems.
use std::path::Path;

use cip::project::{self, info};
use proptest::prelude::*;

/// EDN-ish text: fragments that drive the reader into its corners.
fn ednish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("#{".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(":version".to_string()),
        Just(":platforms".to_string()),
        Just("\"1.2.3\"".to_string()),
        Just("\"linux/amd64\"".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(";".to_string()),
        Just("\n".to_string()),
        Just("#_".to_string()),
        Just("#inst".to_string()),
        Just("1/0".to_string()),
        Just("0x".to_string()),
        Just("1e999".to_string()),
        Just("nil".to_string()),
        "[ -~]{0,8}",
    ];
    proptest::collection::vec(frag, 0..40).prop_map(|v| v.join(" "))
}

fn check(text: &str) {
    let file = Path::new("contexts/00-x/info.edn");
    match info::parse_edn(text, file) {
        Ok(i) => assert!(!i.version.to_string().is_empty()),
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert_eq!(p.file.as_deref(), Some(file));
                let line = p.line.expect("every info.edn problem has a line");
                let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
                assert!(line >= 1 && line <= lines, "line {line} of {text:?}");
            }
        }
    }
    if let Some(span) = info::version_span(text) {
        assert!(text.get(span).is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_string_is_handled(s in any::<String>()) {
        check(&s);
    }

    #[test]
    fn edn_like_text_is_handled(s in ednish()) {
        check(&s);
    }

    #[test]
    fn any_bytes_are_handled(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&String::from_utf8_lossy(&b));
        let _ = info::parse_version_file(&String::from_utf8_lossy(&b), Path::new("VERSION"), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whole scans with random bytes as both files: problems, never a panic.
    #[test]
    fn scanning_random_files_never_panics(info in proptest::collection::vec(any::<u8>(), 0..200),
                                          dockerfile in proptest::collection::vec(any::<u8>(), 0..400)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("contexts/00-x");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("info.edn"), &info).unwrap();
        std::fs::write(dir.join("Dockerfile"), &dockerfile).unwrap();
        let p = project::scan(tmp.path()).unwrap();
        prop_assert_eq!(p.contexts.len() + p.unreadable.len(), 1);
    }
}
