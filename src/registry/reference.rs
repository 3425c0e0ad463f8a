//! A manifest's address: `HOST[:PORT]/REPOSITORY:TAG` or `HOST[:PORT]/REPOSITORY@DIGEST`, as cip
//! names requests in retry lines and errors.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    /// A tag, or a digest (`sha256:...`).
    reference: String,
    by_digest: bool,
}

impl Reference {
    pub fn with_tag(registry: String, repository: String, tag: String) -> Reference {
        Reference {
            registry,
            repository,
            reference: tag,
            by_digest: false,
        }
    }

    pub fn with_digest(registry: String, repository: String, digest: String) -> Reference {
        Reference {
            registry,
            repository,
            reference: digest,
            by_digest: true,
        }
    }

    /// `HOST[:PORT]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag or the digest: what follows `/manifests/` in the request's path.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn digest(&self) -> Option<&str> {
        self.by_digest.then_some(self.reference.as_str())
    }

    pub fn tag(&self) -> Option<&str> {
        (!self.by_digest).then_some(self.reference.as_str())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.by_digest { '@' } else { ':' };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_docker_names_them() {
        let t = Reference::with_tag("h:5000".into(), "team/app".into(), "1.0.0".into());
        assert_eq!(t.to_string(), "h:5000/team/app:1.0.0");
        assert_eq!((t.tag(), t.digest()), (Some("1.0.0"), None));
        let d = Reference::with_digest("h".into(), "app".into(), "sha256:ab".into());
        assert_eq!(d.to_string(), "h/app@sha256:ab");
        assert_eq!(d.digest(), Some("sha256:ab"));
    }
}
