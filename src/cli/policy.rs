//! `slatefs dataset policy …`: automatic snapshot policies (docs/policies.md). Schedules and
//! retention are checked here too, so a bad one is a usage error (exit code 2) that says what
//! is accepted, before anything is sent.

use clap::{Args, Subcommand};
use serde_json::json;

use super::dataset::{table, time_text, Rendered};
use crate::admin::client::AdminClient;
use crate::admin::policies::{policy_json, request_of, retention_record};
use crate::admin::proto;
use crate::policy::spec::{self, Schedule};
use crate::policy::PolicyText;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Give a dataset a snapshot policy (or replace its policy; its snapshots stay with it).
    Set(SetArgs),
    /// Show the policies of every dataset, or of one: schedule, retention, last and next run,
    /// last error, and the snapshots the policy keeps.
    Show { dataset: Option<String> },
    /// Stop taking and pruning snapshots until `resume`.
    Pause { dataset: String },
    /// Start taking snapshots again (the latest slot is taken at once when one was missed).
    Resume { dataset: String },
    /// Remove a dataset's policy; the snapshots it made stay, as hand-made ones.
    Clear { dataset: String },
}

#[derive(Args, Debug)]
pub struct SetArgs {
    pub dataset: String,
    /// Run at every multiple of this interval since the Unix epoch (UTC): 15m, 1h, 1d … (1m to 366d).
    #[arg(long, value_name = "DURATION", value_parser = check_every, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<String>,
    /// Run when this cron expression matches (5 fields, or 6 with seconds first; @daily …).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Time zone of --cron and of the calendar buckets (IANA name, e.g. Europe/Paris) [default: UTC].
    #[arg(long, value_name = "ZONE", requires = "cron", value_parser = check_tz)]
    pub tz: Option<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_hourly: Option<u32>,
    /// … of each of the last N days.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,
    /// … of each of the last N ISO weeks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,
    /// … of each of the last N months.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,
    /// … of each of the last N years.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_yearly: Option<u32>,
    /// Prune snapshots older than this (30d, 12h …), whatever else keeps them (the newest stays).
    #[arg(long, value_name = "DURATION", value_parser = check_max_age)]
    pub max_age: Option<String>,
    /// Take no snapshot when nothing was written since the policy's last one.
    #[arg(long)]
    pub skip_unchanged: bool,
    /// Create the policy paused.
    #[arg(long)]
    pub paused: bool,
    /// Snapshot names are PREFIX-YYYYMMDD-HHMMSSz [default: the dataset's name].
    #[arg(long)]
    pub prefix: Option<String>,
}

fn check_every(s: &str) -> Result<String, String> {
    Schedule::every(s).map(|_| s.to_string())
}

fn check_tz(s: &str) -> Result<String, String> {
    Schedule::cron("@daily", Some(s)).map(|_| s.to_string())
}

fn check_max_age(s: &str) -> Result<String, String> {
    spec::max_age(s).map(|_| s.to_string())
}

impl SetArgs {
    fn text(&self) -> PolicyText {
        PolicyText {
            prefix: self.prefix.clone(),
            every: self.every.clone(),
            cron: self.cron.clone(),
            time_zone: self.tz.clone(),
            keep_last: self.keep_last.unwrap_or(0),
            keep_hourly: self.keep_hourly.unwrap_or(0),
            keep_daily: self.keep_daily.unwrap_or(0),
            keep_weekly: self.keep_weekly.unwrap_or(0),
            keep_monthly: self.keep_monthly.unwrap_or(0),
            keep_yearly: self.keep_yearly.unwrap_or(0),
            max_age: self.max_age.clone(),
            paused: self.paused,
            skip_unchanged: self.skip_unchanged,
        }
    }
}

/// Checks `policy set`'s flags as a whole (what clap cannot: a cron expression, a retention);
/// a refusal is a usage error.
pub fn check(cmd: &PolicyCommand) -> Result<(), String> {
    match cmd {
        PolicyCommand::Set(args) => args.text().settings().map(|_| ()),
        _ => Ok(()),
    }
}

pub(super) async fn execute(c: &mut AdminClient, cmd: PolicyCommand) -> Result<Rendered, tonic::Status> {
    Ok(match cmd {
        PolicyCommand::Set(args) => {
            let p = c.set_policy(request_of(&args.dataset, &args.text())).await?.into_inner();
            one(&p, &format!("policy of {}: {}, keeping {}", p.dataset, p.schedule, retention_text(&p)))
        }
        PolicyCommand::Show { dataset } => {
            let r = c
                .list_policies(proto::ListPoliciesRequest { dataset: dataset.clone().unwrap_or_default() })
                .await?
                .into_inner();
            let mut json = json!({ "policies": r.policies.iter().map(policy_json).collect::<Vec<_>>() });
            if let Some(ms) = r.evaluated_unix_ms {
                json["evaluated_unix_ms"] = json!(ms);
            }
            let table = match (&dataset, r.policies.first()) {
                (Some(_), Some(p)) => details(p),
                _ => policies_table(&r.policies),
            };
            Rendered { json, table }
        }
        PolicyCommand::Pause { dataset } => {
            let p = c.pause_policy(proto::PausePolicyRequest { dataset, paused: true }).await?.into_inner();
            one(&p, &format!("policy of {} paused", p.dataset))
        }
        PolicyCommand::Resume { dataset } => {
            let p = c.pause_policy(proto::PausePolicyRequest { dataset, paused: false }).await?.into_inner();
            one(&p, &format!("policy of {} resumed", p.dataset))
        }
        PolicyCommand::Clear { dataset } => {
            let p = c.clear_policy(proto::ClearPolicyRequest { dataset }).await?.into_inner();
            one(&p, &format!("policy of {} removed; its {} snapshots stay", p.dataset, p.snapshots.len()))
        }
    })
}

fn one(p: &proto::Policy, message: &str) -> Rendered {
    Rendered { json: policy_json(p), table: format!("{message}\n") }
}

fn retention_text(p: &proto::Policy) -> String {
    let r = p.retention.unwrap_or_default();
    spec::describe_retention(&retention_record(&r))
}

fn opt_time(ms: Option<i64>) -> String {
    ms.map(time_text).unwrap_or_else(|| "-".into())
}


fn policies_table(ps: &[proto::Policy]) -> String {
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            vec![
                p.dataset.clone(),
                p.schedule.clone(),
                retention_text(p),
                if p.paused { "paused".into() } else { "active".into() },
                opt_time(p.last_run_unix_ms),
                opt_time(p.next_run_unix_ms),
                p.snapshots.len().to_string(),
                if p.last_error.is_empty() { "-".into() } else { p.last_error.clone() },
            ]
        })
        .collect();
    table(&["DATASET", "SCHEDULE", "KEEP", "STATE", "LAST RUN", "NEXT RUN", "SNAPSHOTS", "LAST ERROR"], &rows)
}

fn details(p: &proto::Policy) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<15}{v}\n"));
    line("dataset:", p.dataset.clone());
    line("schedule:", p.schedule.clone());
    line("keep:", retention_text(p));
    line("state:", if p.paused { "paused".into() } else { "active".into() });
    line("skip unchanged:", if p.skip_unchanged { "yes".into() } else { "no".into() });
    line("names:", format!("{}-YYYYMMDD-HHMMSSz", p.prefix));
    line("last run:", opt_time(p.last_run_unix_ms));
    line("next run:", opt_time(p.next_run_unix_ms));
    line(
        "last error:",
        if p.last_error.is_empty() { "-".into() } else { format!("{} ({})", p.last_error, opt_time(p.last_error_unix_ms)) },
    );
    line("snapshots:", format!("{}", p.snapshots.len()));
    for name in &p.snapshots {
        s.push_str(&format!("  {name}\n"));
    }
    s
}
