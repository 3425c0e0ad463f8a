//! dockerma's platform directive: a Dockerfile comment `# dockerma archs:arm,amd64,arm64:` lists
//! the architectures dockerma builds the image for. cip takes it as the context's platforms when
//! info.edn names none, so a project moving from dockerma keeps its platform lists.
use crate::platform::Platform;

/// A directive found: its line (1-based) and the platforms it names, or why cip cannot read it.
pub type Directive = (usize, Result<Vec<Platform>, String>);

/// The directive of a Dockerfile, None when there is none.
pub fn directive(text: &str) -> Option<Directive> {
    text.lines().enumerate().find_map(|(i, line)| {
        let comment = line.trim_start().strip_prefix('#')?.trim();
        let rest = comment.strip_prefix("dockerma")?.trim_start();
        let list = rest.strip_prefix("archs:")?;
        let list = list.trim_end().strip_suffix(':').unwrap_or(list).trim();
        Some((i + 1, platforms(list)))
    })
}

/// `arm,amd64,arm64` as platforms, in the order given, each once.
fn platforms(list: &str) -> Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for arch in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let p = platform_of(arch).ok_or_else(|| {
            format!(
                "unknown dockerma architecture {arch:?} (known: amd64, arm64, arm, armv6, 386, \
                 ppc64le, s390x, riscv64)"
            )
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("the dockerma directive names no architecture".into());
    }
    Ok(out)
}

/// dockerma's architecture names (with Debian's and Docker Hub's aliases) as platforms.
fn platform_of(arch: &str) -> Option<Platform> {
    let (a, v) = match arch {
        "amd64" | "x86_64" => ("amd64", None),
        "arm64" | "aarch64" | "arm64v8" => ("arm64", None),
        "arm" | "armhf" | "armv7" | "arm32v7" => ("arm", Some("v7")),
        "armv6" | "armel" | "arm32v6" => ("arm", Some("v6")),
        "386" | "i386" => ("386", None),
        "ppc64le" | "s390x" | "riscv64" => (arch, None),
        _ => return None,
    };
    Some(Platform::new("linux", a, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn reads_the_directive_with_dockermas_names() {
        let text = "FROM scratch\n# dockerma archs:arm,amd64,arm64:\nRUN true\n";
        let (line, found) = directive(text).unwrap();
        assert_eq!(line, 2);
        assert_eq!(
            found.unwrap(),
            [p("linux/arm/v7"), p("linux/amd64"), p("linux/arm64")]
        );
        assert_eq!(
            directive("#dockerma archs: amd64 , 386")
                .unwrap()
                .1
                .unwrap(),
            [p("linux/amd64"), p("linux/386")]
        );
    }

    #[test]
    fn no_directive_and_unknown_architectures() {
        assert!(directive("FROM scratch\n# archs:amd64:\n").is_none());
        let (_, found) = directive("# dockerma archs:amd64,sparc:").unwrap();
        assert!(found.unwrap_err().contains("\"sparc\""));
        assert!(directive("# dockerma archs::").unwrap().1.is_err());
    }
}
