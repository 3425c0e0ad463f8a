//! Target platforms (`os/arch[/variant]`), as used by `info.edn`, `--platform` and image indexes.
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Architectures that OCI registries and builders know; anything else is almost surely a typo.
const KNOWN_ARCHS: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64",
    "mipsle", "mips", "loong64", "wasm",
];
const KNOWN_OSES: &[&str] = &[
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "wasip1", "js",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform of the machine cip runs on (what `--only-local-platform` builds).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "arm" => "arm",
            other => other,
        };
        Platform::new("linux", arch, None)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for Platform {
    type Err = String;

    /// Parses `os/arch[/variant]`; the error says what is wrong and what is expected.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| is_token(p)) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant] in lower case, e.g. \"linux/amd64\" or \"linux/arm/v7\""
            ));
        }
        if !KNOWN_OSES.contains(&parts[0]) {
            return Err(format!(
                "invalid platform {s:?}: unknown os {:?} (known: {})",
                parts[0],
                KNOWN_OSES.join(", ")
            ));
        }
        if !KNOWN_ARCHS.contains(&parts[1]) {
            return Err(format!(
                "invalid platform {s:?}: unknown architecture {:?} (known: {})",
                parts[1],
                KNOWN_ARCHS.join(", ")
            ));
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }
}

/// Parses a comma-separated list such as `linux/amd64,linux/arm64` (the CLI and PLATFORMS_OVERRIDE format).
pub fn parse_list(s: &str) -> Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let p: Platform = item.parse()?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("empty platform list".into());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p, Platform::new("linux", "arm", Some("v7")));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
    }

    #[test]
    fn rejects_bad_strings_with_reason() {
        assert!("linux".parse::<Platform>().unwrap_err().contains("os/arch"));
        assert!("Linux/AMD64".parse::<Platform>().is_err());
        assert!("linux/amd46"
            .parse::<Platform>()
            .unwrap_err()
            .contains("unknown architecture"));
        assert!("plan9/amd64"
            .parse::<Platform>()
            .unwrap_err()
            .contains("unknown os"));
        assert!("linux/amd64/v2/x".parse::<Platform>().is_err());
    }

    #[test]
    fn list_dedups_and_sorts() {
        let l = parse_list("linux/arm64, linux/amd64,linux/arm64").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].arch, "amd64");
        assert!(parse_list(" , ").is_err());
    }
}
