//! What a registry address given on the command line may be: `HOST[:PORT][/PATH...]`.
//!
//! The host (with its port) is what cip connects to, looks credentials up by and decides TLS or plain
//! HTTP for; the path is a namespace inside the registry: image `NAME` lives in repository
//! `PATH/NAME` (`ghcr.io/org`, `registry.gitlab.com/group/project`). Path components follow the
//! distribution name grammar (lowercase letters and digits, joined by `.`, `_`, `__` or dashes).
use anyhow::bail;

/// A validated registry address, split into host and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `host[:port]` (`[v6]:port` for IPv6).
    pub host: String,
    /// The namespace inside the registry, `team/sub`; empty for none.
    pub path: String,
}

/// The refusal of an address that carries `user:password@`: it names no part of the address, since
/// that part would be the password.
pub const CREDENTIALS_REFUSED: &str =
    "registry addresses may not carry credentials: use CIP_USERNAME/CIP_PASSWORD or docker login";

impl Address {
    /// Parses and validates `HOST[:PORT][/PATH...]`; one trailing `/` is tolerated.
    pub fn parse(address: &str) -> anyhow::Result<Address> {
        // First, before anything could echo the address: `@` only appears in `user:password@host`.
        if address.contains('@') {
            bail!(CREDENTIALS_REFUSED);
        }
        if address.contains("://") {
            bail!("registry {address:?} must be HOST[:PORT][/PATH] without a scheme (plain HTTP is chosen for localhost, 127.0.0.0/8, [::1] and --insecure-registry hosts)");
        }
        let trimmed = address.strip_suffix('/').unwrap_or(address);
        let (host, path) = split(trimmed);
        if host.is_empty() {
            bail!("empty registry address: give HOST[:PORT][/PATH], e.g. localhost:5000 or ghcr.io/org");
        }
        check_host(address, host)?;
        if !path.is_empty() {
            for component in path.split('/') {
                check_component(address, component)?;
            }
        }
        Ok(Address {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// The repository of image `name` in this registry: `PATH/NAME`, or `NAME` without a path.
    pub fn repository(&self, name: &str) -> String {
        repository(&self.path, name)
    }
}

impl std::fmt::Display for Address {
    /// `HOST[:PORT][/PATH]`, what `REGISTRY` is set to for builds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.path)
        }
    }
}

/// `HOST[:PORT]` and the path after the first `/` (empty if none), without validation.
pub fn split(address: &str) -> (&str, &str) {
    address.split_once('/').unwrap_or((address, ""))
}

/// `PATH/NAME`, or `NAME` when `path` is empty.
pub fn repository(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

/// `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`: letters, digits, `.` and `-`, a numeric port.
fn check_host(address: &str, host: &str) -> anyhow::Result<()> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => {
                (v6, after.strip_prefix(':'))
            }
            _ => bail!("registry {address:?}: {host:?} is not a valid [IPv6] address"),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let name_ok = host.starts_with('[')
        || (!name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if !name_ok {
        bail!("registry {address:?}: {host:?} is not a host name (letters, digits, '.', '-', then an optional :PORT)");
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            bail!("registry {address:?}: port {port:?} is not a number from 0 to 65535");
        }
    }
    Ok(())
}

/// One path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn check_component(address: &str, component: &str) -> anyhow::Result<()> {
    if component.is_empty() {
        bail!("registry {address:?}: the path has an empty component (a doubled or trailing '/')");
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        bail!(
            "registry {address:?}: path component {component:?} must be lowercase ({:?})",
            component.to_ascii_lowercase()
        );
    }
    if !is_path_component(component) {
        bail!("registry {address:?}: path component {component:?} is not a repository name: use lowercase letters and digits, joined by '.', '_', '__' or '-'");
    }
    Ok(())
}

fn is_path_component(c: &str) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let bytes: Vec<char> = c.chars().collect();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return false,
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Separators between runs: one '.', one '_', exactly "__", or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(a: &str) -> (String, String) {
        let p = Address::parse(a).unwrap_or_else(|e| panic!("{a}: {e:#}"));
        (p.host, p.path)
    }

    #[test]
    fn hosts_ports_and_paths() {
        assert_eq!(
            parsed("localhost:5000"),
            ("localhost:5000".into(), "".into())
        );
        assert_eq!(
            parsed("localhost:5000/"),
            ("localhost:5000".into(), "".into())
        );
        assert_eq!(parsed("ghcr.io/org"), ("ghcr.io".into(), "org".into()));
        assert_eq!(
            parsed("127.0.0.1:5000/team/sub/"),
            ("127.0.0.1:5000".into(), "team/sub".into())
        );
        assert_eq!(
            parsed("registry.gitlab.com/group/my-project"),
            ("registry.gitlab.com".into(), "group/my-project".into())
        );
        assert_eq!(
            parsed("[::1]:5000/a.b__c"),
            ("[::1]:5000".into(), "a.b__c".into())
        );
        assert_eq!(
            parsed("REG.example.com/x"),
            ("REG.example.com".into(), "x".into())
        );
    }

    #[test]
    fn repository_and_display() {
        let a = Address::parse("127.0.0.1:5000/team/sub").unwrap();
        assert_eq!(a.repository("busybox"), "team/sub/busybox");
        assert_eq!(a.to_string(), "127.0.0.1:5000/team/sub");
        let b = Address::parse("localhost:5000/").unwrap();
        assert_eq!(b.repository("busybox"), "busybox");
        assert_eq!(b.to_string(), "localhost:5000");
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for (a, why) in [
            ("reg:5000/Team", "must be lowercase (\"team\")"),
            ("reg:5000/team//sub", "empty component"),
            ("reg:5000/team/sub//", "empty component"),
            ("reg:5000/-team", "not a repository name"),
            ("reg:5000/team_", "not a repository name"),
            ("reg:5000/a___b", "not a repository name"),
            ("reg:5000/a._b", "not a repository name"),
            ("reg:5000/a?b", "not a repository name"),
            ("reg:5000/a b", "not a repository name"),
            ("reg:port/a", "port \"port\""),
            ("reg:5000:1/a", "not a host name"),
            ("re g/a", "not a host name"),
            ("/team", "empty registry address"),
            ("", "empty registry address"),
            ("https://reg/a", "without a scheme"),
        ] {
            let e = format!("{:#}", Address::parse(a).unwrap_err());
            assert!(e.contains(why), "{a}: {e}");
        }
        for ok in [
            "reg/a-b", "reg/a--b", "reg/a_b", "reg/a__b", "reg/a.b", "reg/0",
        ] {
            assert!(Address::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn credentials_are_refused_without_echoing_them() {
        for a in [
            "user:s3cret@reg.example.com",
            "user:s3cret@127.0.0.1:5000/team",
            "https://user:s3cret@reg.example.com/team",
            "user:s3/cret@reg.example.com",
        ] {
            let e = format!("{:#}", Address::parse(a).unwrap_err());
            assert_eq!(e, CREDENTIALS_REFUSED, "{a}");
            assert!(!e.contains("s3") && !e.contains("user:"), "{e}");
        }
    }
}
