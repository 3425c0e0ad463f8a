//! Property: on any DAG, after a cascade every reference names its parent's current version, each image
//! was bumped at most once, and only the requested image and its descendants moved. Each info.edn is
//! decorated with decoys (nested maps, `#_` discards, comments, strings and tags holding `:version`):
//! the cascade changes the live top-level value and not one other byte.
use std::collections::BTreeSet;
use std::fs;
use std::ops::Range;
use std::path::Path;

use cip::cascade::{self, Level};
use cip::graph::Graph;
use cip::project;
use clojure_reader::edn::{self, Edn};
use proptest::prelude::*;

/// Entries of an info.edn map that hold `:version` somewhere the cascade must not touch.
const DECOYS: &[&str] = &[
    ":base {:version \"12\"}",
    "#_ :version #_ \"0.1.0\"",
    "#_{:version \"1\"}",
    ":note \":version \\\"9.9.9\\\"\"",
    "; :version \"8.8.8\"\n",
    ":keys #{:version :x}",
    ":t #my/tag {:version \"7.7.7\"}",
    ":c \\: :d \\\"",
    ":list (:version \"6.6.6\")",
    ":vec [{:version \"5.5.5\"} \":version\"]",
    ":x/version \"4.4.4\"",
];
/// What may come before the top-level map.
const PREFIXES: &[&str] = &["", ";; :version \"3.3.3\"\n", "#_{:version \"2.2.2\"}\n"];
const SEPARATORS: &[&str] = &[" ", "\n  ", ", "];

/// How one info.edn is written: a prefix, decoys, where the live `:version` goes among them, separator.
#[derive(Debug, Clone)]
struct Decor {
    prefix: usize,
    decoys: Vec<usize>,
    live_at: usize,
    sep: usize,
}

fn decor() -> impl Strategy<Value = Decor> {
    (
        0..PREFIXES.len(),
        prop::sample::subsequence((0..DECOYS.len()).collect::<Vec<_>>(), 0..5).prop_shuffle(),
        any::<prop::sample::Index>(),
        0..SEPARATORS.len(),
    )
        .prop_map(|(prefix, decoys, at, sep)| Decor {
            prefix,
            live_at: at.index(decoys.len() + 1),
            decoys,
            sep,
        })
}

/// The info.edn text and the byte range of its live version value.
fn info_text(version: &str, d: &Decor) -> (String, Range<usize>) {
    let mut text = format!("{}{{", PREFIXES[d.prefix]);
    let mut span = 0..0;
    for k in 0..=d.decoys.len() {
        if k > 0 {
            text.push_str(SEPARATORS[d.sep]);
        }
        if k == d.live_at {
            text.push_str(":version \"");
            span = text.len()..text.len() + version.len();
            text.push_str(version);
            text.push('"');
        } else {
            text.push_str(DECOYS[d.decoys[if k < d.live_at { k } else { k - 1 }]]);
        }
    }
    text.push_str("}\n");
    (text, span)
}

/// Writes a project: image i depends on `parents[i]` (all < i), each reference possibly stale; its
/// info.edn is written as `decors[i]` says. Returns each info.edn's text and live version range.
fn write_project(
    root: &Path,
    parents: &[Vec<usize>],
    stale: &[bool],
    decors: &[Decor],
) -> Vec<(String, Range<usize>)> {
    let mut infos = Vec::new();
    for (i, ps) in parents.iter().enumerate() {
        let dir = root.join(format!("contexts/{i:03}-img{i}"));
        fs::create_dir_all(&dir).unwrap();
        let (info, span) = info_text(&format!("1.{i}.0"), &decors[i]);
        fs::write(dir.join("info.edn"), &info).unwrap();
        infos.push((info, span));
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
    infos
}

type Dag = (Vec<Vec<usize>>, Vec<bool>, usize, Vec<Decor>);

fn dag() -> impl Strategy<Value = Dag> {
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
        (
            parents,
            proptest::collection::vec(any::<bool>(), n),
            0..n,
            proptest::collection::vec(decor(), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn cascade_leaves_no_stale_reference_and_bumps_once((parents, stale, bumped, decors) in dag()) {
        let tmp = tempfile::tempdir().unwrap();
        let infos = write_project(tmp.path(), &parents, &stale, &decors);
        let p = project::scan(tmp.path()).unwrap();
        let g = Graph::build(&p);
        let requested = g.dag[g.node(&format!("img{bumped}")).unwrap()];
        let c = cascade::compute(&p, &g, &[requested], Level::Patch).unwrap();
        cascade::write(&c, tmp.path(), false).unwrap();

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
        // Each info.edn changed in its live version value only.
        for (i, (before, span)) in infos.iter().enumerate() {
            let ctx = &after.contexts[i];
            let mut expected = before.clone();
            expected.replace_range(span.clone(), &ctx.version.to_string());
            prop_assert_eq!(&fs::read_to_string(&ctx.info_file).unwrap(), &expected);
        }
        // A second cascade has nothing to do.
        let again = cascade::compute(&after, &g2, &[], Level::Patch).unwrap();
        prop_assert!(again.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The span is the live value's, and rewriting it changes the map's :version and nothing else.
    #[test]
    fn version_span_is_the_live_top_level_value(d in decor(), version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
        let (text, live) = info_text(&version, &d);
        prop_assert_eq!(cip::project::info::version_span(&text), Some(live.clone()));
        let mut moved = text.clone();
        moved.replace_range(live, "99.0.0");
        let (before, after) = (edn::read_string(&text).unwrap(), edn::read_string(&moved).unwrap());
        let (Edn::Map(before), Edn::Map(after)) = (&before, &after) else { panic!("not maps") };
        let mut expected = before.clone();
        expected.insert(Edn::key("version"), Edn::string("99.0.0"));
        prop_assert_eq!(&expected, after);
    }
}
