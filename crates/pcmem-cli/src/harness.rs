//! The grid commands: reproduce, run, aggregate, report, regress.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use pcmem_data::DataDirs;
use pcmem_harness::candle_core::Device;
use pcmem_harness::record::{read_all, RunRecord};
use pcmem_harness::run::{estimate_gflop, plan, run_grid, RunOptions};
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
    pub data: DataDirs,
    pub device: Device,
}

/// `i/n` with 1 <= i <= n.
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

/// How `pcmem run` and `pcmem reproduce` run grids (with progress bars).
pub fn options(
    out: &Path,
    shard: Option<(usize, usize)>,
    force: bool,
    data: DataDirs,
    device: Device,
) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        shard,
        force,
        data,
        progress: true,
        device,
    }
}

/// `pcmem reproduce`.
pub fn reproduce(r: &Reproduce) -> anyhow::Result<()> {
    let start = Instant::now();
    let grids = load_grids(&r.experiments, &r.profile, &r.only)?;
    let opts = options(&r.out, None, r.force, r.data.clone(), r.device.clone());
    let (mut ran, mut skipped) = (0, 0);
    for g in &grids {
        let s = run_grid(g, &opts).with_context(|| format!("grid {}", g.id))?;
        ran += s.ran;
        skipped += s.skipped;
    }
    aggregate(&r.out, &r.profile)?;
    let path = write_report(&r.out, &r.profile, &grids, &r.experiments, &r.claims)?;
    println!(
        "{} grids, {ran} cells run, {skipped} already done, in {:.0} s; report: {}",
        grids.len(),
        start.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

/// `pcmem run` with the options of [`options`].
pub fn run_one(grid: &Path, profile: &str, dry_run: bool, opts: RunOptions) -> anyhow::Result<()> {
    let g = Grid::load(grid, profile)?;
    let force = opts.force;
    if dry_run {
        let cells = plan(&g, &opts)?;
        let dims = |d: &str| match d {
            "mnist" => 784,
            "cifar10" => 3072,
            "tiny-imagenet" => 12288,
            _ => 150_528,
        };
        let mut total = 0.0;
        println!("{:<48} {:>8} {:>14}", "cell", "status", "train GFLOP<=");
        for (c, _, done) in &cells {
            let gf = estimate_gflop(&g, c, dims(&c.dataset));
            if !done || force {
                total += gf;
            }
            println!(
                "{:<48} {:>8} {:>14.0}",
                c.id(),
                if *done && !force { "done" } else { "to run" },
                gf
            );
        }
        println!(
            "{} cells ({} to run), {} recall conditions each; training work at most {:.0} GFLOP (about {:.0} s at 100 GFLOP/s)",
            cells.len(),
            cells.iter().filter(|c| !c.2 || force).count(),
            g.recall.corruption.len(),
            total,
            total / 100.0
        );
        return Ok(());
    }
    let s = run_grid(&g, &opts)?;
    println!(
        "{}: {} cells run, {} already done, {:.0} s",
        g.id, s.ran, s.skipped, s.seconds
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
        "aggregated {} records into {} rows: {}",
        plain.len(),
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
    let recs = records_of(dir, profile)?;
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
    Ok(rep::write_report(
        dir, grids, &reference, &df, &recs, &claims, profile,
    )?)
}

/// `pcmem report`.
pub fn report(dir: &Path, profile: &str, experiments: &Path, claims: &Path) -> anyhow::Result<()> {
    let grids = load_grids(experiments, profile, &[])?;
    let path = write_report(dir, profile, &grids, experiments, claims)?;
    println!("report: {}", path.display());
    Ok(())
}

/// `pcmem regress`: every row of the baseline must be present with a retrieved fraction no more
/// than `tolerance` below the baseline's.
pub fn regress(dir: &Path, baseline: &Path, tolerance: f64) -> anyhow::Result<()> {
    use polars::prelude::{CsvReadOptions, DataFrame, SerReader};
    let read = |p: &Path| -> anyhow::Result<DataFrame> {
        let reader = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(p.to_path_buf()));
        let reader = anyhow::Context::with_context(reader, || format!("opening {}", p.display()))?;
        anyhow::Context::with_context(reader.finish(), || format!("reading {}", p.display()))
    };
    let base = read(baseline)?;
    let now = read(&dir.join("table.csv"))?;
    let key = |df: &DataFrame| -> anyhow::Result<Vec<String>> {
        let cols = [
            "grid",
            "dataset",
            "model",
            "hidden",
            "layers",
            "n_images",
            "seed",
            "corruption",
        ];
        let mut v: Vec<Vec<String>> = cols
            .iter()
            .map(|c| agg::strings(df, c))
            .collect::<Result<_, _>>()?;
        // The search point (absent from baselines written before searches existed).
        v.push(agg::strings(df, "search").unwrap_or_else(|_| vec![String::new(); df.height()]));
        Ok((0..df.height())
            .map(|i| v.iter().map(|c| c[i].clone()).collect::<Vec<_>>().join("|"))
            .collect())
    };
    let (bk, nk) = (key(&base)?, key(&now)?);
    let (bf, nf) = (
        agg::floats(&base, "fraction")?,
        agg::floats(&now, "fraction")?,
    );
    let mut failures = Vec::new();
    for (i, k) in bk.iter().enumerate() {
        match nk.iter().position(|x| x == k) {
            None => failures.push(format!("{k}: missing from the new run")),
            Some(j) if nf[j] + tolerance < bf[i] => failures.push(format!(
                "{k}: retrieved {:.0}% < baseline {:.0}% - {:.0}%",
                100.0 * nf[j],
                100.0 * bf[i],
                100.0 * tolerance
            )),
            Some(_) => {}
        }
    }
    for f in &failures {
        println!("REGRESSION {f}");
    }
    println!(
        "{} baseline rows checked, {} regressions (tolerance {tolerance})",
        bk.len(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} rows regressed against {}",
            failures.len(),
            baseline.display()
        )
    }
}
