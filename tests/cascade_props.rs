//! Property: on any DAG, after a cascade every reference names its parent's current version, each image
//! was bumped at most once, and only the requested image and its descendants moved.
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use cip::cascade::{self, Level};
use cip::graph::Graph;
use cip::project;
use proptest::prelude::*;

/// Writes a project: image i depends on `parents[i]` (all < i), each reference possibly stale.
fn write_project(root: &Path, parents: &[Vec<usize>], stale: &[bool]) {
    for (i, ps) in parents.iter().enumerate() {
        let dir = root.join(format!("contexts/{i:03}-img{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("info.edn"), format!("{{:version \"1.{i}.0\"}}\n")).unwrap();
        let mut df = String::from("ARG REGISTRY\n");
        match ps.split_first() {
            None => df.push_str("FROM scratch\n"),
            Some((first, rest)) => {
                let tag = |p: usize| {
                    if stale[i] {
                        format!("1.{p}.0-old")
                    } else {
                        format!("1.{p}.0")
                    }
                };
                df.push_str(&format!(
                    "FROM ${{REGISTRY}}/img{first}:{} AS b\nARG REGISTRY\n",
                    tag(*first)
                ));
                for p in rest {
                    df.push_str(&format!(
                        "COPY --from=${{REGISTRY}}/img{p}:{} /x /x{p}\n",
                        tag(*p)
                    ));
                }
            }
        }
        fs::write(dir.join("Dockerfile"), df).unwrap();
    }
}

fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>, usize)> {
    (2usize..14).prop_flat_map(|n| {
        let parents = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::btree_set(0..i, 0..=i.min(3))
                        .prop_map(|s| s.into_iter().collect::<Vec<_>>())
                        .boxed()
                }
            })
            .collect::<Vec<_>>();
        (parents, proptest::collection::vec(any::<bool>(), n), 0..n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn cascade_leaves_no_stale_reference_and_bumps_once((parents, stale, bumped) in dag()) {
        let tmp = tempfile::tempdir().unwrap();
        write_project(tmp.path(), &parents, &stale);
        let p = project::scan(tmp.path()).unwrap();
        let g = Graph::build(&p);
        let requested = g.dag[g.node(&format!("img{bumped}")).unwrap()];
        let c = cascade::compute(&p, &g, &[requested], Level::Patch).unwrap();
        cascade::write(&c, false).unwrap();

        // No image bumped twice.
        let names: Vec<&str> = c.bumps.iter().map(|b| b.name.as_str()).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        prop_assert_eq!(names.len(), unique.len());
        // The requested image and all its descendants moved.
        let mut must: BTreeSet<String> = g.descendants(requested).iter().map(|&d| p.contexts[d].name.clone()).collect();
        must.insert(p.contexts[requested].name.clone());
        for m in &must {
            prop_assert!(unique.contains(m.as_str()), "{} not bumped", m);
        }

        // Every reference now names its parent's current version.
        let after = project::scan(tmp.path()).unwrap();
        let g2 = Graph::build(&after);
        for ctx in &after.contexts {
            for r in &ctx.refs.registry_refs {
                let parent = &after.contexts[g2.dag[g2.node(&r.name).unwrap()]];
                prop_assert_eq!(r.tag.clone(), Some(parent.version.to_string()));
            }
        }
        // A second cascade has nothing to do.
        let again = cascade::compute(&after, &g2, &[], Level::Patch).unwrap();
        prop_assert!(again.is_empty());
    }
}
