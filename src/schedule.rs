//! Runs a DAG of tasks on tokio: a task starts as soon as all its dependencies succeeded (no batch
//! barriers) and its pool has a free slot, longest remaining chain first. A pool is one builder node
//! (or any other limited resource): each has its own slot count, so "2 on node A, 8 on node B" is
//! one schedule.
use std::collections::BTreeSet;
use std::future::Future;

use tokio::task::JoinSet;

/// One node of the task graph.
#[derive(Debug, Clone)]
pub struct Task {
    /// Indexes of tasks that must succeed first.
    pub deps: Vec<usize>,
    /// The pool whose slot the task takes (builds take one of their node's); None for tasks that
    /// take none (assembling an index).
    pub pool: Option<usize>,
    /// Expected relative cost, used to start the longest remaining chains first.
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Not run because a dependency failed (the index of the failed task that caused it).
    Skipped {
        failed_dep: usize,
    },
    /// Not run or killed because the run stopped at the first error.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Slots per pool (a pool with 0 slots still runs one task at a time).
    pub slots: Vec<usize>,
    /// Keep running everything that does not depend on a failure.
    pub keep_going: bool,
}

impl Options {
    /// One pool of `jobs` slots.
    pub fn jobs(jobs: usize, keep_going: bool) -> Options {
        Options {
            slots: vec![jobs],
            keep_going,
        }
    }
}

/// Runs the tasks; `exec(i)` produces task i's future. Returns the outcome of each task.
/// On the first failure without `keep_going`, every running task is aborted (its future dropped, which
/// kills its builder processes) and the rest are cancelled.
pub async fn run<F, Fut>(tasks: &[Task], opts: Options, exec: F) -> Vec<Outcome>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    run_until(tasks, opts, std::future::pending(), exec).await
}

/// [`run`], stopping as at a first failure (running tasks aborted, the rest cancelled) when `stop`
/// resolves, whatever `keep_going` says.
pub async fn run_until<F, Fut>(
    tasks: &[Task],
    opts: Options,
    stop: impl Future<Output = ()>,
    exec: F,
) -> Vec<Outcome>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::pin!(stop);
    let n = tasks.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, t) in tasks.iter().enumerate() {
        for &d in &t.deps {
            dependents[d].push(i);
            waiting[i] += 1;
        }
    }
    let priority = remaining_cost(tasks, &dependents);
    // Ready tasks ordered by (highest remaining chain, lowest index).
    let key = |i: usize| (std::cmp::Reverse(ordered(priority[i])), i);
    let mut ready: BTreeSet<(std::cmp::Reverse<u64>, usize)> =
        (0..n).filter(|&i| waiting[i] == 0).map(key).collect();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut running = JoinSet::new();
    let mut used = vec![0usize; opts.slots.len()];
    let fits = |i: usize, used: &[usize]| match tasks[i].pool {
        None => true,
        Some(p) => {
            used.get(p).copied().unwrap_or(0) < opts.slots.get(p).copied().unwrap_or(1).max(1)
        }
    };
    let mut stopping = false;

    loop {
        // Start what is ready and fits in the free slots (nothing new once stopping).
        if !stopping {
            while let Some(&(p, i)) = ready.iter().find(|(_, i)| fits(*i, &used)) {
                ready.remove(&(p, i));
                if let Some(pool) = tasks[i].pool {
                    take(&mut used, pool, 1);
                }
                let fut = exec(i);
                running.spawn(async move { (i, fut.await) });
            }
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            () = &mut stop, if !stopping => {
                stopping = true;
                running.abort_all();
                continue;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if let Some(pool) = tasks[i].pool {
            used[pool] -= 1;
        }
        match result {
            Ok(()) => {
                outcome[i] = Some(Outcome::Succeeded);
                for &d in &dependents[i] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 && outcome[d].is_none() {
                        ready.insert(key(d));
                    }
                }
            }
            Err(e) => {
                outcome[i] = Some(Outcome::Failed(format!("{e:#}")));
                if opts.keep_going {
                    skip_descendants(i, &dependents, &mut outcome, &mut ready);
                } else {
                    stopping = true;
                    running.abort_all();
                }
            }
        }
    }
    outcome
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Cancelled))
        .collect()
}

/// Adds `n` to the slots used in `pool`, growing the table for a pool the options did not list.
fn take(used: &mut Vec<usize>, pool: usize, n: usize) {
    if used.len() <= pool {
        used.resize(pool + 1, 0);
    }
    used[pool] += n;
}

fn skip_descendants(
    failed: usize,
    dependents: &[Vec<usize>],
    outcome: &mut [Option<Outcome>],
    ready: &mut BTreeSet<(std::cmp::Reverse<u64>, usize)>,
) {
    let mut stack = dependents[failed].clone();
    while let Some(d) = stack.pop() {
        if outcome[d].is_none() {
            outcome[d] = Some(Outcome::Skipped { failed_dep: failed });
            ready.retain(|&(_, i)| i != d);
            stack.extend(&dependents[d]);
        }
    }
}

/// For each task, the largest total cost of a chain starting at it (itself included).
fn remaining_cost(tasks: &[Task], dependents: &[Vec<usize>]) -> Vec<f64> {
    let n = tasks.len();
    let mut memo: Vec<Option<f64>> = vec![None; n];
    // Iterative post-order, so deep graphs do not overflow the stack.
    for start in 0..n {
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            if memo[i].is_some() {
                continue;
            }
            if expanded {
                let tail = dependents[i]
                    .iter()
                    .filter_map(|&d| memo[d])
                    .fold(0.0, f64::max);
                memo[i] = Some(tasks[i].cost + tail);
            } else {
                stack.push((i, true));
                stack.extend(
                    dependents[i]
                        .iter()
                        .filter(|&&d| memo[d].is_none())
                        .map(|&d| (d, false)),
                );
            }
        }
    }
    memo.into_iter().map(|m| m.unwrap_or(0.0)).collect()
}

/// A total order for non-negative costs (fixed-point, plenty of resolution for seconds).
fn ordered(x: f64) -> u64 {
    (x.max(0.0) * 1_000_000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn task(deps: &[usize]) -> Task {
        Task {
            deps: deps.to_vec(),
            pool: Some(0),
            cost: 1.0,
        }
    }

    fn in_pool(pool: usize) -> Task {
        Task {
            deps: Vec::new(),
            pool: Some(pool),
            cost: 1.0,
        }
    }

    async fn run_with(tasks: &[Task], opts: Options, fail: &[usize]) -> (Vec<Outcome>, Vec<usize>) {
        let order = Arc::new(Mutex::new(Vec::new()));
        let fail = fail.to_vec();
        let o = order.clone();
        let out = run(tasks, opts, move |i| {
            let o = o.clone();
            let fails = fail.contains(&i);
            async move {
                tokio::time::sleep(Duration::from_millis(if fails { 5 } else { 20 })).await;
                o.lock().unwrap().push(i);
                if fails {
                    anyhow::bail!("task {i} broke")
                }
                Ok(())
            }
        })
        .await;
        let order = order.lock().unwrap().clone();
        (out, order)
    }

    #[tokio::test]
    async fn dependencies_finish_first() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3
        let tasks = [task(&[]), task(&[0]), task(&[0]), task(&[1, 2])];
        let (out, order) = run_with(&tasks, Options::jobs(4, false), &[]).await;
        assert!(out.iter().all(|o| *o == Outcome::Succeeded));
        assert_eq!(order[0], 0);
        assert_eq!(order[3], 3);
    }

    #[tokio::test]
    async fn keep_going_skips_only_descendants_of_failures() {
        // 0 fails; 1 depends on 0; 2 independent; 3 depends on 2.
        let tasks = [task(&[]), task(&[0]), task(&[]), task(&[2])];
        let (out, _) = run_with(&tasks, Options::jobs(2, true), &[0]).await;
        assert!(matches!(out[0], Outcome::Failed(ref m) if m.contains("task 0 broke")));
        assert_eq!(out[1], Outcome::Skipped { failed_dep: 0 });
        assert_eq!(out[2], Outcome::Succeeded);
        assert_eq!(out[3], Outcome::Succeeded);
    }

    #[tokio::test]
    async fn first_error_cancels_the_rest() {
        let tasks = [task(&[]), task(&[]), task(&[1])];
        let (out, order) = run_with(&tasks, Options::jobs(2, false), &[0]).await;
        assert!(matches!(out[0], Outcome::Failed(_)));
        assert_eq!(out[1], Outcome::Cancelled, "the running task was aborted");
        assert_eq!(out[2], Outcome::Cancelled);
        assert_eq!(order, [0], "the aborted task never finished");
    }

    #[tokio::test]
    async fn jobs_bounds_concurrency() {
        let live = Arc::new(Mutex::new((0usize, 0usize)));
        let tasks: Vec<Task> = (0..6).map(|_| task(&[])).collect();
        let l = live.clone();
        run(&tasks, Options::jobs(2, false), move |_| {
            let l = l.clone();
            async move {
                {
                    let mut g = l.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                l.lock().unwrap().0 -= 1;
                Ok(())
            }
        })
        .await;
        assert_eq!(live.lock().unwrap().1, 2);
    }

    #[tokio::test]
    async fn each_pool_has_its_own_slots() {
        // Pool 0 has 1 slot, pool 1 has 3: six tasks each.
        let tasks: Vec<Task> = (0..12).map(|i| in_pool(i % 2)).collect();
        let live = Arc::new(Mutex::new(([0usize; 2], [0usize; 2])));
        let l = live.clone();
        let pools: Vec<usize> = tasks.iter().map(|t| t.pool.unwrap()).collect();
        run(
            &tasks,
            Options {
                slots: vec![1, 3],
                keep_going: false,
            },
            move |i| {
                let (l, pool) = (l.clone(), pools[i]);
                async move {
                    {
                        let mut g = l.lock().unwrap();
                        g.0[pool] += 1;
                        g.1[pool] = g.1[pool].max(g.0[pool]);
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    l.lock().unwrap().0[pool] -= 1;
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(live.lock().unwrap().1, [1, 3]);
    }

    #[tokio::test]
    async fn a_full_pool_does_not_hold_up_another() {
        // Task 0 holds pool 0's only slot for long; pool 1's tasks run meanwhile.
        let tasks = [in_pool(0), in_pool(0), in_pool(1), in_pool(1)];
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        run(
            &tasks,
            Options {
                slots: vec![1, 1],
                keep_going: false,
            },
            move |i| {
                let o = o.clone();
                async move {
                    let ms = if i == 0 { 60 } else { 5 };
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    o.lock().unwrap().push(i);
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(*order.lock().unwrap(), [2, 3, 0, 1]);
    }

    #[test]
    fn longest_chain_first() {
        let tasks = [task(&[]), task(&[0]), task(&[1]), task(&[])];
        let deps: Vec<Vec<usize>> = vec![vec![1], vec![2], vec![], vec![]];
        assert_eq!(remaining_cost(&tasks, &deps), [3.0, 2.0, 1.0, 1.0]);
    }
}
