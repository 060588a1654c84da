//! Splitting a grid's cells into shards of about equal work, for job arrays (`--shard i/n`,
//! or SLURM's `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT`).
//!
//! Cells are dealt largest first, each to the shard with the least work so far (ties to the
//! lower shard); the assignment depends only on the grid, so every task of an array computes
//! the same one, and a finished cell never moves to another shard. Cells that share one
//! training (points of a search that differ only in recall settings) go to one shard together
//! ([`assign_grouped`]), so the array trains that model once.
//!
//! ```
//! use pcmem_harness::shard::assign;
//! let work = [9.0, 1.0, 1.0, 1.0, 4.0, 4.0];
//! let shard = assign(&work, 2);
//! let load = |s| (0..6).filter(|&k| shard[k] == s).map(|k| work[k]).sum::<f64>();
//! assert_eq!((load(0), load(1)), (10.0, 10.0));
//! ```

/// The 0-based shard of each cell, given each cell's work (any non-negative measure).
pub fn assign(work: &[f64], shards: usize) -> Vec<usize> {
    let shards = shards.max(1);
    let mut order: Vec<usize> = (0..work.len()).collect();
    // Largest first; equal work keeps the grid's order.
    order.sort_by(|&a, &b| work[b].total_cmp(&work[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; shards];
    let mut count = vec![0usize; shards];
    let mut out = vec![0usize; work.len()];
    for k in order {
        // Least work, then fewest cells (so one-shot cells of no work still spread), then
        // the lower shard.
        let s = (0..shards)
            .min_by(|&a, &b| {
                load[a]
                    .total_cmp(&load[b])
                    .then(count[a].cmp(&count[b]))
                    .then(a.cmp(&b))
            })
            .expect("at least one shard");
        load[s] += work[k].max(0.0);
        count[s] += 1;
        out[k] = s;
    }
    out
}

/// The 0-based shard of each cell when cells of one group share part of their work (one
/// training serves them all; each still recalls): each group counts the largest `shared` work
/// of its cells plus the `own` work of every one, is dealt as one by [`assign`], and all its
/// cells get its shard. `group[k]` is any label of cell `k`'s group.
///
/// ```
/// use pcmem_harness::shard::assign_grouped;
/// // Cells 0 and 1 share a training (5) and recall 1 each; 2 and 3 are alone.
/// let shard = assign_grouped(&[5.0, 5.0, 4.0, 1.0], &[1.0; 4], &[0, 0, 1, 2], 2);
/// assert_eq!(shard[0], shard[1]);
/// assert_ne!(shard[0], shard[2]);
/// ```
pub fn assign_grouped(shared: &[f64], own: &[f64], group: &[usize], shards: usize) -> Vec<usize> {
    assert_eq!(shared.len(), group.len(), "one group label per cell");
    assert_eq!(own.len(), group.len(), "one own work per cell");
    let mut labels: Vec<usize> = Vec::new();
    let mut of_cell = Vec::with_capacity(group.len());
    let mut group_work: Vec<f64> = Vec::new();
    for (k, g) in group.iter().enumerate() {
        let i = match labels.iter().position(|l| l == g) {
            Some(i) => i,
            None => {
                labels.push(*g);
                group_work.push(0.0);
                labels.len() - 1
            }
        };
        group_work[i] = group_work[i].max(shared[k]);
        of_cell.push(i);
    }
    for (&i, w) in of_cell.iter().zip(own) {
        group_work[i] += w;
    }
    let by_group = assign(&group_work, shards);
    of_cell.into_iter().map(|i| by_group[i]).collect()
}

/// The shard `(i, n)` (1-based i) a SLURM array task runs: `SLURM_ARRAY_TASK_ID` counted from
/// `SLURM_ARRAY_TASK_MIN` (default 0) among `SLURM_ARRAY_TASK_COUNT` tasks. `None` outside an
/// array job; an error when the variables do not make a shard.
pub fn from_slurm(get: impl Fn(&str) -> Option<String>) -> Result<Option<(usize, usize)>, String> {
    let Some(id) = get("SLURM_ARRAY_TASK_ID") else {
        return Ok(None);
    };
    let num = |name: &str, v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("{name}=`{v}` is not a whole number"))
    };
    let id = num("SLURM_ARRAY_TASK_ID", &id)?;
    let min = match get("SLURM_ARRAY_TASK_MIN") {
        Some(v) => num("SLURM_ARRAY_TASK_MIN", &v)?,
        None => 0,
    };
    let count = match get("SLURM_ARRAY_TASK_COUNT") {
        Some(v) => num("SLURM_ARRAY_TASK_COUNT", &v)?,
        None => return Err("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into()),
    };
    if id < min || id - min >= count || count == 0 {
        return Err(format!(
            "SLURM array task {id} (first {min}, {count} tasks) is not a shard; submit with \
             --array=0-{} (contiguous)",
            count.saturating_sub(1)
        ));
    }
    Ok(Some((id - min + 1, count)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_cells_within_the_greedy_bound() {
        // Pseudo-random works, 1 to 1000.
        let mut x = 12345u64;
        let work: Vec<f64> = (0..97)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1.0 + (x >> 33) as f64 % 1000.0
            })
            .collect();
        for n in [1, 2, 3, 4, 7, 16] {
            let s = assign(&work, n);
            assert_eq!(s, assign(&work, n), "deterministic");
            assert!(s.iter().all(|&k| k < n));
            let load: Vec<f64> = (0..n)
                .map(|i| {
                    (0..work.len())
                        .filter(|&k| s[k] == i)
                        .map(|k| work[k])
                        .sum()
                })
                .collect();
            let total: f64 = work.iter().sum();
            let biggest = work.iter().cloned().fold(0.0, f64::max);
            // Largest-first greedy is within 4/3 of the best possible makespan.
            let best = (total / n as f64).max(biggest);
            let worst = load.iter().cloned().fold(0.0, f64::max);
            assert!(worst <= 4.0 / 3.0 * best + 1e-9, "n={n}: {load:?}");
        }
        // Cells of no work are spread by number.
        let s = assign(&[0.0; 8], 4);
        assert!((0..4).all(|i| s.iter().filter(|&&k| k == i).count() == 2));
    }

    #[test]
    fn cells_of_one_training_share_a_shard_and_count_once() {
        // Three points of one training (work 6 each, 6 in all), two cells alone (5 and 4).
        let work = [6.0, 6.0, 6.0, 5.0, 4.0];
        let group = [7, 7, 7, 1, 2];
        let none = [0.0; 5];
        let s = assign_grouped(&work, &none, &group, 2);
        assert!(s[0] == s[1] && s[1] == s[2], "{s:?}");
        // Counted once, the group (6) is dealt first; 5 goes to the other shard, then 4 too.
        assert_eq!(s, vec![0, 0, 0, 1, 1]);
        // Each point's own work (its recall, 2) counts: the group (6 + 3 x 2 = 12) is dealt
        // first, then 5 + 2 to the other shard, and 4 + 2 to it too (7 < 12).
        let own = [2.0; 5];
        assert_eq!(assign_grouped(&work, &own, &group, 2), vec![0, 0, 0, 1, 1]);
        // Own work decides where shared work alone would tie: two groups of one training (4)
        // whose points recall 1 and 3 times as long.
        let s = assign_grouped(
            &[4.0, 4.0, 4.0, 4.0, 5.0],
            &[3.0, 3.0, 1.0, 1.0, 0.0],
            &[0, 0, 1, 1, 2],
            2,
        );
        // Groups: 10, 6, 5 -> 10 to shard 0, 6 to shard 1, 5 to shard 1 (11 against 10).
        assert_eq!(s, vec![0, 0, 1, 1, 1]);
        // Groups of one are `assign` of the sum.
        let w = [3.0, 9.0, 1.0, 4.0];
        let o = [1.0, 0.0, 5.0, 0.0];
        let sum: Vec<f64> = w.iter().zip(&o).map(|(a, b)| a + b).collect();
        assert_eq!(assign_grouped(&w, &o, &[0, 1, 2, 3], 3), assign(&sum, 3));
    }

    #[test]
    fn slurm_array_variables_make_a_shard_or_an_error() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        assert_eq!(from_slurm(env(&[])), Ok(None));
        assert_eq!(
            from_slurm(env(&[
                ("SLURM_ARRAY_TASK_ID", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ])),
            Ok(Some((1, 4)))
        );
        assert_eq!(
            from_slurm(env(&[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_MIN", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ])),
            Ok(Some((4, 4)))
        );
        for bad in [
            &[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ][..],
            &[
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ][..],
            &[("SLURM_ARRAY_TASK_ID", "1")][..],
        ] {
            let pairs: &'static [(&'static str, &'static str)] = bad;
            assert!(from_slurm(env(pairs)).is_err(), "{bad:?}");
        }
    }
}
