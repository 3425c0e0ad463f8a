//! An external base as builders read it: `debian`, `debian:bookworm-slim`,
//! `ghcr.io/org/tool:1.2@sha256:...`, normalised the way Docker names images, so that every
//! spelling of one image is asked for once.
use std::fmt;

/// Docker Hub's canonical name, and the host its registry API answers on.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A normalised external reference: `docker.io/library/debian:bookworm-slim`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseRef {
    /// `docker.io` for Docker Hub (whatever alias was written), else the host as written.
    pub host: String,
    /// `library/debian` for Docker Hub's official images.
    pub repository: String,
    /// The tag, `latest` when neither a tag nor a digest was written.
    pub tag: Option<String>,
    /// A pinned digest (`@sha256:...`).
    pub digest: Option<String>,
}

impl BaseRef {
    /// Reads `written` (an image of a `FROM`, `COPY --from` or `RUN --mount from=`, its ARGs
    /// expanded). Errors say why the text is no image name builders could pull.
    pub fn parse(written: &str) -> Result<BaseRef, String> {
        if written.contains('$') {
            return Err(format!("{written}: a variable cip cannot expand"));
        }
        let (name, digest) = match written.split_once('@') {
            Some((n, d)) => (n, Some(check_digest(d)?)),
            None => (written, None),
        };
        let (name, tag) = split_tag(name);
        if let Some(t) = tag {
            check_tag(t)?;
        }
        let (host, path) = split_host(name);
        if path.is_empty() || path.split('/').any(|c| !component_ok(c)) {
            return Err(format!(
                "{written}: not an image name (lower-case letters, digits and . _ - between slashes)"
            ));
        }
        let host = match host {
            None | Some("index.docker.io") | Some(DOCKER_HUB) => DOCKER_HUB.to_string(),
            Some(h) => h.to_string(),
        };
        let repository = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(BaseRef {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// The host whose registry API serves this image (Docker Hub's API host for `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.host
        }
    }

    /// What is asked of the registry: the tag, which says where the image is now, or the digest
    /// of a reference pinned without a tag.
    pub fn asked(&self) -> &str {
        self.tag
            .as_deref()
            .or(self.digest.as_deref())
            .unwrap_or("latest")
    }

    /// The same image without its pin: what its tag names today. None for a digest written
    /// without a tag, which names one image for ever.
    pub fn unpinned(&self) -> Option<BaseRef> {
        self.tag.as_ref()?;
        Some(BaseRef {
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for BaseRef {
    /// Docker's short form: `debian:bookworm`, `ghcr.io/org/tool:1.2@sha256:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repo = self.repository.as_str();
        match (self.host.as_str(), repo.strip_prefix("library/")) {
            (DOCKER_HUB, Some(official)) => write!(f, "{official}")?,
            (DOCKER_HUB, None) => write!(f, "{repo}")?,
            (host, _) => write!(f, "{host}/{repo}")?,
        }
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `name[:tag]`: a `:` after the last `/` starts the tag (one before it is a port).
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

/// The first component is a host when it has a `.` or a `:` or is `localhost`, as Docker reads it.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn component_ok(c: &str) -> bool {
    let ok_chars = c
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok_chars && ends_ok(c.bytes().next()) && ends_ok(c.bytes().last())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !tag.starts_with(['.', '-']);
    ok.then_some(())
        .ok_or_else(|| format!("{tag}: not a tag (letters, digits, . _ -, at most 128)"))
}

fn check_digest(d: &str) -> Result<String, String> {
    let hex = d.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(d.to_string())
    } else {
        Err(format!(
            "{d}: not a sha256 digest (sha256: and 64 lower-case hex digits)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = BaseRef::parse(s).unwrap();
        (r.host, r.repository, r.tag, r.digest)
    }

    #[test]
    fn docker_hub_names_are_normalised_as_docker_reads_them() {
        let official = (
            "docker.io".into(),
            "library/debian".into(),
            Some("bookworm".into()),
            None,
        );
        assert_eq!(norm("debian:bookworm"), official);
        assert_eq!(norm("docker.io/library/debian:bookworm"), official);
        assert_eq!(norm("index.docker.io/debian:bookworm"), official);
        assert_eq!(norm("docker.io/debian:bookworm"), official);
        assert_eq!(norm("debian").2.as_deref(), Some("latest"));
        assert_eq!(norm("org/tool:1").1, "org/tool");
        assert_eq!(
            BaseRef::parse("docker.io/library/debian:bookworm")
                .unwrap()
                .to_string(),
            "debian:bookworm"
        );
        assert_eq!(
            BaseRef::parse("docker.io/library/debian:bookworm")
                .unwrap()
                .api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn hosts_ports_and_pins_are_kept() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = BaseRef::parse(&format!("localhost:5000/team/base:1.0@{d}")).unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/base")
        );
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("1.0"), Some(d.as_str()))
        );
        assert_eq!(r.asked(), "1.0");
        assert_eq!(
            r.unpinned().unwrap().to_string(),
            "localhost:5000/team/base:1.0"
        );
        let pinned_only = BaseRef::parse(&format!("ghcr.io/o/t@{d}")).unwrap();
        assert_eq!(
            (pinned_only.tag.as_deref(), pinned_only.asked()),
            (None, d.as_str())
        );
        assert_eq!(
            pinned_only.unpinned(),
            None,
            "a digest without a tag names no moving image"
        );
        assert_eq!(norm("localhost/x").0, "localhost");
        assert_eq!(norm("host:5000/x").2.as_deref(), Some("latest"));
    }

    #[test]
    fn what_is_no_image_name_is_refused_with_the_reason() {
        for bad in [
            "Debian:12",
            "debian:",
            "a//b",
            "debian@sha256:12",
            "-x",
            "x:-1",
            "${BASE}",
        ] {
            assert!(BaseRef::parse(bad).is_err(), "{bad}");
        }
        assert!(BaseRef::parse("${BASE}").unwrap_err().contains("variable"));
    }
}
