//! Scrapes a `/metrics` page with a real HTTP client and a real Prometheus text-format parser
//! (Python's prometheus_client, through prom_scrape.py) and answers questions about it.
#![allow(dead_code)]

use std::process::Command;

use serde_json::Value;

pub struct Page {
    pub status: u16,
    pub content_type: String,
    families: Vec<Value>,
}

pub fn scrape(url: &str) -> Page {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prom_scrape.py");
    let out = Command::new("python3").arg(script).arg(url).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "the Prometheus parser refused {url}: {}\n(install it with: python3 -m pip install prometheus-client)",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("prom_scrape.py prints JSON");
    Page {
        status: v["status"].as_u64().unwrap_or(0) as u16,
        content_type: v["content_type"].as_str().unwrap_or("").to_string(),
        families: v["families"].as_array().cloned().unwrap_or_default(),
    }
}

impl Page {
    pub fn family(&self, name: &str) -> Option<&Value> {
        self.families.iter().find(|f| f["name"] == name)
    }

    pub fn family_type(&self, name: &str) -> Option<String> {
        self.family(name).map(|f| f["type"].as_str().unwrap_or("").to_string())
    }

    /// Samples called `sample` whose labels include every pair of `labels`.
    pub fn samples<'a>(&'a self, sample: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Value> + 'a {
        self.families
            .iter()
            .flat_map(|f| f["samples"].as_array().into_iter().flatten())
            .filter(move |s| s["name"] == sample && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
    }

    /// The sum of the matching samples (0 when there is none).
    pub fn sum(&self, sample: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(sample, labels).map(|s| s["value"].as_f64().unwrap_or(f64::NAN)).sum()
    }

    /// The one matching sample's value; panics unless exactly one matches.
    pub fn one(&self, sample: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Value> = self.samples(sample, labels).collect();
        assert_eq!(found.len(), 1, "{sample}{labels:?}: {found:?}");
        found[0]["value"].as_f64().unwrap()
    }

    pub fn has(&self, sample: &str, labels: &[(&str, &str)]) -> bool {
        self.samples(sample, labels).next().is_some()
    }
}
