//! `cip status --bases`: every external base of the tree, where its registry says it points now,
//! and the images on it; as a table and as JSON (docs/json.md).
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::resolve::Resolution;
use super::{BaseRef, Bases};
use crate::project::dockerfile::kind_label;

/// Where `base` points now: its own resolution, or for a pinned one that of its tag.
fn now<'r>(base: &BaseRef, resolved: &'r BTreeMap<BaseRef, Resolution>) -> Option<&'r Resolution> {
    base.unpinned().and_then(|u| resolved.get(&u))
}

/// The status of one base (its JSON name) and the words the table shows for it.
fn state(base: &BaseRef, resolved: &BTreeMap<BaseRef, Resolution>) -> (&'static str, String) {
    match (now(base, resolved), &base.digest) {
        (None, Some(_)) => ("pinned", "pinned by digest, no tag to follow".into()),
        (None, None) => ("unknown", "not asked".into()),
        (Some(Resolution::Digest(d)), Some(pin)) if d == pin => {
            ("pinned", "pinned; its tag names it".into())
        }
        (Some(Resolution::Digest(d)), Some(_)) => (
            "pin-moved",
            format!("pinned; its tag now names {}", short(d)),
        ),
        (Some(Resolution::Digest(d)), None) => ("resolved", short(d)),
        (Some(Resolution::Missing { registry }), _) => {
            ("missing", format!("missing: {registry} has no such tag"))
        }
        (Some(Resolution::Unreachable { registry, reason }), _) => (
            "unreachable",
            format!("unreachable: {registry}: {}", first_line(reason)),
        ),
    }
}

fn short(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The table: one row per base, then the references cip could not ask for.
pub fn render(found: &Bases, resolved: &BTreeMap<BaseRef, Resolution>) -> String {
    if found.bases.is_empty() && found.unreadable.is_empty() {
        return "no external bases: every image builds on images of this tree (or on scratch)\n"
            .into();
    }
    let mut rows = vec![vec!["BASE".to_string(), "NOW".into(), "IMAGES".into()]];
    for base in found.bases.keys() {
        let (_, now) = state(base, resolved);
        rows.push(vec![
            base.to_string(),
            now,
            found.images_on(base).join(", "),
        ]);
    }
    let mut out = crate::output::table_of(&rows);
    for (u, why) in &found.unreadable {
        out.push_str(&format!(
            "cannot ask for {} ({} at {}:{}): {why}\n",
            u.written,
            kind_label(u.kind),
            u.dockerfile.display(),
            u.line
        ));
    }
    out
}

/// The JSON document of `--bases --json`.
pub fn to_json(
    found: &Bases,
    resolved: &BTreeMap<BaseRef, Resolution>,
    mirrors: &super::resolve::Mirrors,
) -> Value {
    let bases: Vec<Value> = found
        .bases
        .iter()
        .map(|(base, uses)| {
            let (status, _) = state(base, resolved);
            let (digest, reason) = match now(base, resolved) {
                Some(Resolution::Digest(d)) => (Some(d.clone()), None),
                Some(Resolution::Unreachable { reason, .. }) => (None, Some(reason.clone())),
                _ => (None, None),
            };
            json!({
                "base": base.to_string(),
                "reference": format!("{}/{}", base.host, base.repository),
                "tag": base.tag,
                "pinned": base.digest,
                "registry": mirrors.address_for(base),
                "status": status,
                "digest": digest,
                "reason": reason,
                "images": found.images_on(base),
                "uses": uses.iter().map(|u| json!({
                    "image": u.image,
                    "file": u.dockerfile,
                    "line": u.line,
                    "instruction": kind_label(u.kind),
                    "written": u.written,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let unreadable: Vec<Value> = found
        .unreadable
        .iter()
        .map(|(u, why)| json!({"image": u.image, "file": u.dockerfile, "line": u.line, "written": u.written, "reason": why}))
        .collect();
    json!({"bases": bases, "unreadable": unreadable})
}
