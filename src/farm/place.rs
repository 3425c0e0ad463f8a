//! Where each build step runs, decided when the plan is made: on a node native for its platform,
//! the one with the most free slots (the fewest steps already placed per slot), ties broken towards
//! the node that built the step's parent (its layers are there); with no native node, on a node
//! that emulates the platform. The other nodes that could build the step are kept, in the same
//! order of preference, for a node lost in the middle of the run.
use crate::builders::emulation;
use crate::platform::Platform;

/// What placement knows of a node.
#[derive(Debug, Clone)]
pub struct Seat {
    pub native: Vec<Platform>,
    /// The platforms it can emulate (None: unknown, assumed able).
    pub emulates: Option<Vec<Platform>>,
    pub slots: usize,
}

/// Where a step goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: usize,
    pub emulated: bool,
    /// The other nodes able to build it, best first.
    pub fallbacks: Vec<usize>,
}

/// Places steps one after another, in the plan's order (parents first).
#[derive(Debug)]
pub struct Placer {
    seats: Vec<Seat>,
    placed: Vec<usize>,
}

impl Placer {
    pub fn new(seats: Vec<Seat>) -> Placer {
        let placed = vec![0; seats.len()];
        Placer { seats, placed }
    }

    /// The node for a step of `platform` whose parents were built on `parents`; None when no node
    /// can build it.
    pub fn place(&mut self, platform: &Platform, parents: &[usize]) -> Option<Placement> {
        let native: Vec<usize> = (0..self.seats.len())
            .filter(|&i| emulation::runs_natively(platform, &self.seats[i].native))
            .collect();
        let emulating: Vec<usize> = (0..self.seats.len())
            .filter(|i| !native.contains(i))
            .filter(|&i| {
                self.seats[i]
                    .emulates
                    .as_ref()
                    .is_none_or(|e| e.contains(platform))
            })
            .collect();
        let (pool, emulated) = if native.is_empty() {
            (emulating.clone(), true)
        } else {
            (native.clone(), false)
        };
        let node = self.best(&pool, parents)?;
        self.placed[node] += 1;
        let mut fallbacks = self.ranked(&native, parents);
        fallbacks.extend(self.ranked(&emulating, parents));
        fallbacks.retain(|&n| n != node);
        Some(Placement {
            node,
            emulated,
            fallbacks,
        })
    }

    /// The candidates, best first: most free slots, then a parent's node, then declaration order.
    fn ranked(&self, candidates: &[usize], parents: &[usize]) -> Vec<usize> {
        let mut v = candidates.to_vec();
        v.sort_by(|&a, &b| {
            self.fullness(a, b)
                .then_with(|| parents.contains(&b).cmp(&parents.contains(&a)))
                .then(a.cmp(&b))
        });
        v
    }

    fn best(&self, candidates: &[usize], parents: &[usize]) -> Option<usize> {
        self.ranked(candidates, parents).first().copied()
    }

    /// Compares how full `a` and `b` would be with one more step: steps placed per slot.
    fn fullness(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let slots = |i: usize| self.seats[i].slots.max(1);
        ((self.placed[a] + 1) * slots(b)).cmp(&((self.placed[b] + 1) * slots(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn seat(native: &str, slots: usize) -> Seat {
        Seat {
            native: vec![p(native)],
            emulates: Some(vec![p("linux/arm64")]),
            slots,
        }
    }

    #[test]
    fn independent_steps_spread_over_native_nodes_by_slots() {
        let mut placer = Placer::new(vec![
            seat("linux/amd64", 1),
            seat("linux/amd64", 3),
            seat("linux/arm64", 2),
        ]);
        let amd64 = p("linux/amd64");
        let nodes: Vec<usize> = (0..8)
            .map(|_| placer.place(&amd64, &[]).unwrap().node)
            .collect();
        assert_eq!(nodes.iter().filter(|&&n| n == 0).count(), 2, "{nodes:?}");
        assert_eq!(nodes.iter().filter(|&&n| n == 1).count(), 6, "{nodes:?}");
        let arm = placer.place(&p("linux/arm64"), &[]).unwrap();
        assert_eq!(arm.node, 2);
        assert!(!arm.emulated);
        assert_eq!(
            arm.fallbacks,
            [1, 0],
            "the emulating nodes, the least full first (6 steps on 3 slots, before 2 on 1)"
        );
    }

    #[test]
    fn ties_go_to_the_parents_node() {
        let mut placer = Placer::new(vec![seat("linux/amd64", 2), seat("linux/amd64", 2)]);
        let amd64 = p("linux/amd64");
        assert_eq!(placer.place(&amd64, &[]).unwrap().node, 0);
        assert_eq!(placer.place(&amd64, &[]).unwrap().node, 1);
        // Both hold one step: the child of a step on node 1 goes there.
        let child = placer.place(&amd64, &[1]).unwrap();
        assert_eq!(child.node, 1);
        assert_eq!(child.fallbacks, [0]);
    }

    #[test]
    fn without_a_native_node_an_emulating_one_builds() {
        let mut placer = Placer::new(vec![seat("linux/amd64", 2)]);
        let arm = placer.place(&p("linux/arm64"), &[]).unwrap();
        assert!(arm.emulated);
        assert_eq!(placer.place(&p("linux/s390x"), &[]), None);
    }
}
