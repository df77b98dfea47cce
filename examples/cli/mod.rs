//! A small `--key value` argument reader shared by the examples (they need a handful of
//! options each; a full CLI crate would cost more build time than it saves).
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--key value` pairs.
pub struct Args {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Args {
    /// Reads the process arguments; exits with the usage text on `--help` or a malformed list.
    pub fn parse(usage: &'static str, known: &[&str]) -> Args {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(key) = it.next() {
            if key == "--help" || key == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = key.strip_prefix("--").filter(|k| known.contains(k)) else {
                fail(usage, &format!("unknown argument {key:?}"));
            };
            let Some(value) = it.next() else { fail(usage, &format!("{key} needs a value")) };
            values.insert(name.to_string(), value);
        }
        Args { values, usage }
    }

    /// The value of `--key`, parsed, or `default`.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> T {
        match self.values.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| fail(self.usage, &format!("--{key}: cannot read {v:?}"))),
        }
    }

    /// The value of `--key`, if given.
    pub fn opt(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }
}

fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    std::process::exit(2)
}

/// Mean, standard deviation, min and max of column `j` of a row-major matrix with `cols` columns.
pub fn column_summary(values: &[f64], cols: usize, j: usize) -> (f64, f64, f64, f64) {
    let col: Vec<f64> = values.iter().skip(j).step_by(cols).copied().collect();
    let n = col.len().max(1) as f64;
    let mean = col.iter().sum::<f64>() / n;
    let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let min = col.iter().copied().fold(f64::INFINITY, f64::min);
    let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, sd, min, max)
}
