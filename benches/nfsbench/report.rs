//! The markdown tables of workloads 1–4: figures per target, ratios against the goals, and the
//! S3 requests each workload caused.

use crate::fmt_num;
use crate::s3::{Counts, CLASSES};
use crate::workloads::ROWS;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub enum Cell {
    Val(f64),
    Missing(String),
}

pub type Results = BTreeMap<String, BTreeMap<&'static str, Cell>>;

/// What the S3 server received between the end of the previous row and the end of this one.
pub struct ReqRow {
    pub row: String,
    pub counts: Counts,
    /// How much work the row did (MiB, ops, entries, files); None for start-up and shutdown.
    pub units: Option<f64>,
}

pub struct Report {
    pub md: String,
}

impl Report {
    pub fn line(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
    }
}

fn val(results: &Results, t: &str, k: &str) -> Option<f64> {
    match results.get(t).and_then(|r| r.get(k)) {
        Some(Cell::Val(v)) => Some(*v),
        _ => None,
    }
}

pub fn workloads(rep: &mut Report, targets: &[String], results: &Results) {
    rep.line("### Workloads 1–4 (higher is better)");
    rep.line("");
    let mut hdr = "| workload | unit |".to_string();
    let mut sep = "|---|---|".to_string();
    for t in targets {
        write!(hdr, " {t} |").unwrap();
        sep.push_str("---:|");
    }
    rep.line(&hdr);
    rep.line(&sep);
    for (k, unit) in ROWS {
        let mut l = format!("| {k} | {unit} |");
        for t in targets {
            match results.get(t.as_str()).and_then(|r| r.get(k)) {
                Some(Cell::Val(v)) => write!(l, " {} |", fmt_num(*v)).unwrap(),
                Some(Cell::Missing(m)) => write!(l, " {m} |").unwrap(),
                None => l.push_str(" — |"),
            }
        }
        rep.line(&l);
    }
    rep.line("");
}

/// The ratio tables (local stores, S3) for the targets that ran; returns the goals missed.
pub fn ratios(rep: &mut Report, targets: &[String], results: &Results) -> Vec<String> {
    let ratio = |a: &str, b: &str, k: &str| -> Option<f64> { Some(val(results, a, k)? / val(results, b, k)?) };
    let cell = |r: Option<f64>| r.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let goal = |r: Option<f64>, need: f64| match r {
        Some(x) if x >= need => "met",
        Some(_) => "**missed**",
        None => "",
    };
    let with_goal = |r: Option<f64>, need: f64| format!("{} {}", cell(r), goal(r, need)).trim_end().to_string();
    let mut missed = Vec::new();
    let mut check = |k: &str, name: &str, r: Option<f64>, need: f64| {
        if goal(r, need) == "**missed**" {
            missed.push(format!("{k}: {name} ({:.2})", r.unwrap()));
        }
    };
    if targets.iter().any(|t| !t.ends_with("-s3")) {
        rep.line("### Ratios slatefs/peer and goals (local stores)");
        rep.line("");
        rep.line("| workload | async/ganesha (goal ≥1) | async/zerofs (goal ≥2) | sync/zerofs (goal ≥1) | async/disk | sync/disk | seq: async/disk (goal ≥0.5) |");
        rep.line("|---|---:|---:|---:|---:|---:|---:|");
        for (k, _) in ROWS {
            let ag = ratio("slatefs-async", "ganesha", k);
            let az = ratio("slatefs-async", "zerofs", k);
            let sz = ratio("slatefs-sync", "zerofs", k);
            let ad = ratio("slatefs-async", "disk", k);
            let seq = k.starts_with("seq");
            check(k, "async ≥ ganesha", ag, 1.0);
            check(k, "async ≥ 2× zerofs", az, 2.0);
            check(k, "sync ≥ zerofs", sz, 1.0);
            if seq {
                check(k, "async ≥ 0.5× disk", ad, 0.5);
            }
            rep.line(&format!(
                "| {k} | {} | {} | {} | {} | {} | {} |",
                with_goal(ag, 1.0),
                with_goal(az, 2.0),
                with_goal(sz, 1.0),
                cell(ad),
                cell(ratio("slatefs-sync", "disk", k)),
                if seq { with_goal(ad, 0.5) } else { "".into() }
            ));
        }
        rep.line("");
    }
    if targets.iter().any(|t| t.ends_with("-s3")) {
        rep.line("### Ratios on S3 (the same S3 server for both) and S3 against the local store");
        rep.line("");
        rep.line("| workload | async/zerofs (goal ≥2) | sync/zerofs (goal ≥1) | slatefs async S3/local | slatefs sync S3/local | zerofs S3/local |");
        rep.line("|---|---:|---:|---:|---:|---:|");
        for (k, _) in ROWS {
            let az = ratio("slatefs-async-s3", "zerofs-s3", k);
            let sz = ratio("slatefs-sync-s3", "zerofs-s3", k);
            check(k, "S3: async ≥ 2× zerofs", az, 2.0);
            check(k, "S3: sync ≥ zerofs", sz, 1.0);
            rep.line(&format!(
                "| {k} | {} | {} | {} | {} | {} |",
                with_goal(az, 2.0),
                with_goal(sz, 1.0),
                cell(ratio("slatefs-async-s3", "slatefs-async", k)),
                cell(ratio("slatefs-sync-s3", "slatefs-sync", k)),
                cell(ratio("zerofs-s3", "zerofs", k)),
            ));
        }
        rep.line("");
    }
    missed
}

fn per_unit_name(row: &str) -> &'static str {
    match row {
        "seq write" | "seq read" => "per MiB",
        "list" => "per entry",
        "small write" | "small read" => "per file",
        _ => "per op",
    }
}

/// Enough digits for small per-op figures (0.0031 requests per LOOKUP).
fn fmt_rate(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 0.01 {
        format!("{v:.4}")
    } else if v < 1.0 {
        format!("{v:.3}")
    } else {
        fmt_num(v)
    }
}

/// Requests per unit of work for every S3 target, then one table of counts per target.
pub fn requests(rep: &mut Report, targets: &[String], reqs: &BTreeMap<String, Vec<ReqRow>>) {
    let s3: Vec<&String> = targets.iter().filter(|t| reqs.contains_key(t.as_str())).collect();
    if s3.is_empty() {
        return;
    }
    rep.line("### S3 requests per unit of work (all classes; lower is better)");
    rep.line("");
    rep.line("Counted by the S3 server itself (the same counter for every target), from the end of the previous row to the end of this one, so background work a row leaves behind (flushes, compaction) lands in the next row.");
    rep.line("");
    let mut hdr = "| workload | unit |".to_string();
    let mut sep = "|---|---|".to_string();
    for t in &s3 {
        write!(hdr, " {t} |").unwrap();
        sep.push_str("---:|");
    }
    rep.line(&hdr);
    rep.line(&sep);
    for (k, _) in ROWS {
        let mut l = format!("| {k} | {} |", per_unit_name(k));
        for t in &s3 {
            match reqs[t.as_str()].iter().find(|r| r.row == *k) {
                Some(ReqRow { counts, units: Some(u), .. }) if *u > 0.0 => write!(l, " {} |", fmt_rate(counts.total() as f64 / u)).unwrap(),
                _ => l.push_str(" — |"),
            }
        }
        rep.line(&l);
    }
    rep.line("");
    for t in s3 {
        rep.line(&format!("#### S3 requests: {t}"));
        rep.line("");
        let mut hdr = "| workload |".to_string();
        for c in CLASSES {
            write!(hdr, " {} |", c.to_uppercase()).unwrap();
        }
        rep.line(&format!("{hdr} total | MB up | MB down | requests per unit |"));
        rep.line(&format!("|---|{}---:|---:|---:|---:|", "---:|".repeat(CLASSES.len())));
        let mut sum = Counts::default();
        let rows = &reqs[t.as_str()];
        for r in rows {
            sum.add(&r.counts);
        }
        for (r, bold) in rows.iter().map(|r| (r, false)).chain(std::iter::once((&ReqRow { row: "total".into(), counts: sum, units: None }, true))) {
            let name = if bold { "**total**".to_string() } else { r.row.clone() };
            let mut l = format!("| {name} |");
            for c in CLASSES {
                write!(l, " {} |", r.counts.get(c)).unwrap();
            }
            let per = match r.units {
                Some(u) if u > 0.0 => format!("{} {}", fmt_rate(r.counts.total() as f64 / u), per_unit_name(&r.row)),
                _ => String::new(),
            };
            rep.line(&format!(
                "{l} {} | {} | {} | {per} |",
                r.counts.total(),
                fmt_num(r.counts.get("bytes_in") as f64 / 1e6),
                fmt_num(r.counts.get("bytes_out") as f64 / 1e6)
            ));
        }
        rep.line("");
    }
}
