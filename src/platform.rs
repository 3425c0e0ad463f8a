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
    /// The platform `os/arch[/variant]`, its variant left out where it is the architecture's
    /// only one (`arm64/v8`, `amd64/v1`): containerd matches `linux/arm64/v8` and `linux/arm64` as
    /// one platform, and so does cip, whether it is read from info.edn, `--platform`, an index or
    /// an image config.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let implied = matches!(
            (arch, variant),
            ("arm64", Some("v8")) | ("amd64", Some("v1"))
        );
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.filter(|_| !implied).map(str::to_string),
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

/// The platforms of `requested` (`--platform`) that no image of the run declares (`declared`):
/// nothing is built, checked or staged for them.
pub fn undeclared(requested: &[Platform], declared: &[Platform]) -> Vec<Platform> {
    requested
        .iter()
        .filter(|p| !declared.contains(p))
        .cloned()
        .collect()
}

/// Checks `--platform` against what the images declare: Err when no requested platform is
/// declared (the run would call everything up to date), Ok with a warning when some are not.
pub fn check_requested(
    requested: &[Platform],
    declared: &[Platform],
) -> Result<Option<String>, String> {
    let missing = undeclared(requested, declared);
    if missing.is_empty() {
        return Ok(None);
    }
    let list = |ps: &[Platform]| {
        let mut v: Vec<String> = ps.iter().map(Platform::to_string).collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    let what = format!("--platform: no image declares {}", list(&missing));
    if missing.len() == requested.len() {
        let declared = if declared.is_empty() {
            "none".to_string()
        } else {
            list(declared)
        };
        return Err(format!(
            "{what} (the images declare {declared}): nothing to do for it; add it to an image's \
             :platforms in info.edn, or name a declared platform"
        ));
    }
    let kept: Vec<Platform> = requested
        .iter()
        .filter(|p| !missing.contains(p))
        .cloned()
        .collect();
    Ok(Some(format!("{what}; going on with {}", list(&kept))))
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
    fn a_variant_that_is_the_only_one_is_the_platform_without_it() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p, "linux/arm64".parse().unwrap());
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::new("linux", "amd64", Some("v1")).to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::new("linux", "arm", Some("v7")).to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::new("linux", "amd64", Some("v3")).to_string(),
            "linux/amd64/v3"
        );
    }

    #[test]
    fn requested_platforms_no_image_declares_are_named() {
        let l = |s: &str| parse_list(s).unwrap();
        let declared = l("linux/amd64,linux/arm64");
        assert_eq!(check_requested(&l("linux/arm64/v8"), &declared), Ok(None));
        let none = check_requested(&l("linux/arm/v7"), &declared).unwrap_err();
        assert!(
            none.starts_with("--platform: no image declares linux/arm/v7 (the images declare linux/amd64, linux/arm64)"),
            "{none}"
        );
        let some = check_requested(&l("linux/arm/v7,linux/amd64"), &declared).unwrap();
        assert_eq!(
            some.as_deref(),
            Some("--platform: no image declares linux/arm/v7; going on with linux/amd64")
        );
        assert!(check_requested(&l("linux/amd64"), &[])
            .unwrap_err()
            .contains("declare none"));
    }

    #[test]
    fn list_dedups_and_sorts() {
        let l = parse_list("linux/arm64, linux/amd64,linux/arm64").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].arch, "amd64");
        assert!(parse_list(" , ").is_err());
    }
}
