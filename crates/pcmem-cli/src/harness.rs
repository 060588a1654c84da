//! The grid commands: reproduce, run, aggregate, report, regress.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use pcmem_data::DataDirs;
use pcmem_harness::candle_core::Device;
use pcmem_harness::left::count;
use pcmem_harness::record::{read_all, RunRecord};
use pcmem_harness::run::{run_grid, RunOptions, RunSummary};
use pcmem_harness::spec::Grid;
use pcmem_harness::{aggregate as agg, report as rep};

use crate::BadInput;

/// Options of `pcmem reproduce`.
pub struct Reproduce {
    pub profile: String,
    pub only: Vec<String>,
    pub out: PathBuf,
    pub experiments: PathBuf,
    pub claims: PathBuf,
    pub force: bool,
    pub offline: bool,
    pub data: DataDirs,
    pub device: Device,
    /// The PCN's kernel.
    pub kernel: pcmem_model::Kernel,
    pub checkpoint_every: Option<std::time::Duration>,
    /// Keep trained models in their checkpoints (`--keep-trained`; checked against
    /// `checkpoint_every` by [`keep_trained`]).
    pub keep_trained: bool,
    /// List what is left of every grid and its estimate instead of running (`Some(rate)`:
    /// the assumed GFLOP/s of `--rate`, `Some(None)`: the rates the records measured).
    pub dry_run: Option<Option<f64>>,
}

/// `--dry-run` and `--rate`: `None` to run, `Some(None)` for an estimate at the rates the
/// records measured, `Some(Some(r))` at `r` GFLOP/s; `--rate` alone or not a positive number
/// is bad input.
pub fn parse_rate(dry_run: bool, rate: Option<f64>) -> anyhow::Result<Option<Option<f64>>> {
    match rate {
        Some(_) if !dry_run => Err(BadInput(
            "--rate sets the speed assumed by --dry-run's estimate; add --dry-run".into(),
        )
        .into()),
        Some(r) if !(r.is_finite() && r > 0.0) => Err(BadInput(format!(
            "--rate {r}: a training rate in GFLOP/s must be a positive number"
        ))
        .into()),
        r => Ok(dry_run.then_some(r)),
    }
}

/// `--keep-trained`: the trained model is kept in the cell's checkpoint, so it needs
/// checkpoints (`--checkpoint-every` other than `off`).
pub fn keep_trained(keep: bool, every: Option<std::time::Duration>) -> anyhow::Result<bool> {
    if keep && every.is_none() {
        return Err(BadInput(
            "--keep-trained keeps the trained model in the cell's checkpoint; it cannot be used \
             with --checkpoint-every off"
                .into(),
        )
        .into());
    }
    Ok(keep)
}

/// `--checkpoint-every`: `30s`, `5m`, `2h`, a bare number of seconds, or `off`.
pub fn parse_every(s: &str) -> anyhow::Result<Option<std::time::Duration>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || {
        BadInput(format!(
            "--checkpoint-every `{s}`: expected a duration such as 30s, 5m or 2h, or `off`"
        ))
    };
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad().into()),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(bad().into());
    }
    Ok(Some(std::time::Duration::from_secs_f64(v * scale)))
}

/// Reads one `--where KEY=VALUE`.
pub fn parse_only(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(BadInput(format!(
            "--where `{s}`: expected KEY=VALUE, e.g. model=autoencoder or hidden=512"
        ))
        .into()),
    }
}

/// Reads `--shard i/n` with 1 <= i <= n.
pub fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || {
        BadInput(format!(
            "--shard `{s}`: expected i/n with 1 <= i <= n, e.g. 2/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || n == 0 || i > n {
        return Err(bad().into());
    }
    Ok((i, n))
}

fn grid_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the experiments folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(BadInput(format!("no grid files (*.toml) in {}", dir.display())).into());
    }
    Ok(v)
}

fn load_grids(dir: &Path, profile: &str, only: &[String]) -> anyhow::Result<Vec<Grid>> {
    let mut grids = Vec::new();
    for f in grid_files(dir)? {
        let g = Grid::load(&f, profile)?;
        if only.is_empty() || only.contains(&g.id) {
            grids.push(g);
        }
    }
    for o in only {
        if !grids.iter().any(|g| &g.id == o) {
            return Err(BadInput(format!(
                "--only {o}: no grid with that id in {}",
                dir.display()
            ))
            .into());
        }
    }
    Ok(grids)
}

/// How `pcmem run` and `pcmem reproduce` run grids (with progress bars). With checkpoints
/// (`checkpoint_every`), a signal asks the training cell to save its state at the end of its
/// epoch and stop; without, there is nothing to save and the first signal ends the process at
/// once (exit 4; records are written atomically, so none is left half-written).
pub fn options(
    out: &Path,
    shard: Option<(usize, usize)>,
    force: bool,
    data: DataDirs,
    device: Device,
    checkpoint_every: Option<std::time::Duration>,
) -> RunOptions {
    let stop = match checkpoint_every {
        Some(_) => Some(crate::signals::stop_flag()),
        None => {
            crate::signals::stop_at_once();
            None
        }
    };
    RunOptions {
        kernel: Default::default(),
        out: out.to_path_buf(),
        shard,
        only: Vec::new(),
        force,
        data,
        progress: true,
        offline: false,
        device,
        checkpoint_every,
        keep_trained: false,
        stop,
    }
}

/// `pcmem reproduce`.
pub fn reproduce(r: &Reproduce) -> anyhow::Result<()> {
    let start = Instant::now();
    let grids = load_grids(&r.experiments, &r.profile, &r.only)?;
    let mut opts = options(
        &r.out,
        None,
        r.force,
        r.data.clone(),
        r.device.clone(),
        r.checkpoint_every,
    );
    if let Some(rate) = r.dry_run {
        return crate::plan::all(&grids, &r.experiments, rate, &opts);
    }
    pcmem_harness::atomic::check_writable(&r.out)?;
    opts.keep_trained = r.keep_trained;
    opts.kernel = r.kernel;
    opts.offline = r.offline;
    let mut not_run = Vec::new();
    let mut all = RunSummary::default();
    for g in &grids {
        let s = run_grid(g, &opts).with_context(|| format!("grid {}", g.id))?;
        all.ran += s.ran;
        all.skipped += s.skipped;
        all.held_elsewhere += s.held_elsewhere;
        all.recovered += s.recovered;
        if let Some(reason) = s.not_run {
            not_run.push(format!("{}: {reason}", g.id));
        }
    }
    let (ran, skipped) = (all.ran, all.skipped);
    if records_of(&r.out, &r.profile)?.is_empty() && !not_run.is_empty() {
        return Err(NotRun(not_run).into());
    }
    aggregate(&r.out, &r.profile)?;
    let path = write_report(&r.out, &r.profile, &grids, &r.experiments, &r.claims)?;
    println!(
        "{}, {} run, {skipped} already done{}{}, in {:.0} s; report: {}",
        count(grids.len(), "grid"),
        count(ran, "cell"),
        held(&all),
        recovered(&all),
        start.elapsed().as_secs_f64(),
        path.display()
    );
    if not_run.is_empty() {
        Ok(())
    } else {
        Err(NotRun(not_run).into())
    }
}

/// Grids that were not run because their data cannot be had here (exit 3).
#[derive(Debug)]
pub struct NotRun(pub Vec<String>);

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} grid(s) not run:", self.0.len())?;
        for line in &self.0 {
            write!(f, "\n  not run: {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NotRun {}

pub use pcmem_harness::left::duration;

pub fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
}

fn held(s: &RunSummary) -> String {
    if s.held_elsewhere > 0 {
        format!(", {} held by another process (skipped)", s.held_elsewhere)
    } else {
        String::new()
    }
}

fn recovered(s: &RunSummary) -> String {
    if s.recovered > 0 {
        format!(
            ", {} moved aside and recomputed",
            count(s.recovered, "unreadable record")
        )
    } else {
        String::new()
    }
}

/// `pcmem run` with the options of [`options`]; `dry_run` (with an assumed training rate in
/// GFLOP/s, or None for the rate the records measured) lists the cells instead.
pub fn run_one(
    grid: &Path,
    profile: &str,
    dry_run: Option<Option<f64>>,
    opts: RunOptions,
) -> anyhow::Result<()> {
    let g = Grid::load(grid, profile)?;
    if let Some(rate) = dry_run {
        // The other grids of its folder (those that load) price a model kind that has no
        // record of this grid on this device.
        let siblings: Vec<Grid> = grid
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|dir| grid_files(dir).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Grid::load(f, profile).ok())
            .collect();
        let pooled = crate::plan::pooled(&siblings, &opts);
        crate::plan::grid(&g, &grid.display().to_string(), rate, &pooled, &opts, true)?;
        return Ok(());
    }
    let s = run_grid(&g, &opts)?;
    if let Some(reason) = s.not_run {
        return Err(NotRun(vec![format!("{}: {reason}", g.id)]).into());
    }
    println!(
        "{}: {} run, {} already done{}{}, {:.0} s",
        g.id,
        count(s.ran, "cell"),
        s.skipped,
        held(&s),
        recovered(&s),
        s.seconds
    );
    Ok(())
}

fn records_of(dir: &Path, profile: &str) -> anyhow::Result<Vec<(PathBuf, RunRecord)>> {
    Ok(read_all(dir)?
        .into_iter()
        .filter(|(_, r)| r.profile == profile)
        .collect())
}

/// `pcmem aggregate`.
pub fn aggregate(dir: &Path, profile: &str) -> anyhow::Result<polars::prelude::DataFrame> {
    let recs = records_of(dir, profile)?;
    if recs.is_empty() {
        return Err(BadInput(format!(
            "no run records of profile `{profile}` under {}/runs",
            dir.display()
        ))
        .into());
    }
    let plain: Vec<RunRecord> = recs.into_iter().map(|(_, r)| r).collect();
    let mut df = agg::tidy(&plain)?;
    agg::write(&mut df, dir)?;
    println!(
        "aggregated {} into {} rows: {}",
        count(plain.len(), "record"),
        df.height(),
        dir.join("table.csv").display()
    );
    Ok(df)
}

fn write_report(
    dir: &Path,
    profile: &str,
    grids: &[Grid],
    experiments: &Path,
    claims: &Path,
) -> anyhow::Result<PathBuf> {
    // Only records the grids as they are now would produce; the others are listed.
    let (recs, stale) = pcmem_harness::stale::split_current(grids, records_of(dir, profile)?);
    for (p, why) in &stale {
        eprintln!("report: not using {} ({why})", p.display());
    }
    let plain: Vec<RunRecord> = recs.iter().map(|(_, r)| r.clone()).collect();
    let df = agg::tidy(&plain)?;
    let claims = if claims.exists() {
        rep::load_claims(claims)?
    } else {
        eprintln!(
            "warning: no claims file at {}; the report has no claim table",
            claims.display()
        );
        Vec::new()
    };
    // The same grids at the paper's sizes, for the report's list of differences.
    let reference: Vec<Grid> = if profile == "full" {
        grids.to_vec()
    } else {
        grids
            .iter()
            .filter_map(|g| {
                let text =
                    std::fs::read_to_string(experiments.join(format!("{}.toml", g.id))).ok()?;
                Grid::parse(&text, &g.id, "full").ok()
            })
            .collect()
    };
    let records = rep::Records {
        current: &recs,
        stale: &stale,
    };
    Ok(rep::write_report(
        dir, grids, &reference, &df, records, &claims, profile,
    )?)
}

/// `pcmem report`.
pub fn report(dir: &Path, profile: &str, experiments: &Path, claims: &Path) -> anyhow::Result<()> {
    let grids = load_grids(experiments, profile, &[])?;
    let path = write_report(dir, profile, &grids, experiments, claims)?;
    println!("report: {}", path.display());
    Ok(())
}

/// `pcmem regress`: [`pcmem_harness::regress::regress`], printed.
pub fn regress(dir: &Path, baseline: &Path, tolerance: f64) -> anyhow::Result<()> {
    let gate = pcmem_harness::regress::regress(dir, baseline, tolerance)?;
    for f in &gate.failures {
        println!("REGRESSION {f}");
    }
    println!(
        "{} baseline rows checked, {} regressions (tolerance {tolerance})",
        gate.checked,
        gate.failures.len()
    );
    if gate.failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} rows regressed against {}",
            gate.failures.len(),
            baseline.display()
        )
    }
}
