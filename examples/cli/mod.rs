//! The examples' command lines, read with `lexopt`: `--key value` options, flags without
//! values (`--quiet`), `--help`, and errors printed as text.
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed options and flags.
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    usage: &'static str,
}

impl Args {
    /// Reads the process arguments: `options` take a value, `flags` none. Prints `usage` and
    /// exits on `--help`; prints the problem and `usage` and exits with status 2 on anything
    /// else it does not know.
    pub fn parse(usage: &'static str, options: &[&str], flags: &[&str]) -> Args {
        use lexopt::prelude::*;
        let mut args = Args { values: HashMap::new(), flags: Vec::new(), usage };
        let mut parser = lexopt::Parser::from_env();
        loop {
            match parser.next() {
                Ok(None) => break,
                Ok(Some(Short('h') | Long("help"))) => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                Ok(Some(Long(name))) if flags.contains(&name) => args.flags.push(name.to_string()),
                Ok(Some(Long(name))) if options.contains(&name) => {
                    let name = name.to_string();
                    match parser.value().map(|v| v.string()) {
                        Ok(Ok(v)) => {
                            args.values.insert(name, v);
                        }
                        Ok(Err(e)) => fail(usage, &format!("--{name}: {e}")),
                        Err(e) => fail(usage, &e.to_string()),
                    }
                }
                Ok(Some(other)) => fail(usage, &other.unexpected().to_string()),
                Err(e) => fail(usage, &e.to_string()),
            }
        }
        args
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

    /// Whether the flag `--key` was given.
    pub fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }
}

fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    std::process::exit(2)
}

/// Ends an example: on an error, prints it as text (not its debug form) and exits with status 1.
pub fn finish(result: sbi_runtime::Result<()>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
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
