//! The values of `labtui bench serve`'s options, parsed with a message that names what is wrong:
//! rates, shares, percentiles, JSON bodies, headers, shared prefixes and SLOs.

use crate::protocol::serve::Slo;
use anyhow::{Context, Result};
use std::time::Duration;

pub fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a rate"))?;
    if r.is_nan() || r <= 0.0 {
        return Err(format!("a rate must be above 0 requests/s (got {s})"));
    }
    Ok(r)
}

pub fn positive(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !x.is_finite() || x <= 0.0 {
        return Err(format!("must be a finite number above 0 (got {s})"));
    }
    Ok(x)
}

pub fn non_negative(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !x.is_finite() || x < 0.0 {
        return Err(format!("must be a finite number, 0 or more (got {s})"));
    }
    Ok(x)
}

pub fn percent(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a percentile"))?;
    if !(x > 0.0 && x <= 100.0) {
        return Err(format!("a percentile is above 0 and at most 100 (got {s})"));
    }
    Ok(x)
}

pub fn json_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("--extra-body must be a JSON object, e.g. '{\"top_k\": 1}'".into()),
        Err(e) => Err(format!("--extra-body is not JSON: {e}")),
    }
}

pub fn header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: write a header as NAME:VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    reqwest::header::HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| format!("`{k}` is not a header name"))?;
    reqwest::header::HeaderValue::from_str(v)
        .map_err(|_| format!("the value of {k} is not a header value"))?;
    Ok((k.to_string(), v.to_string()))
}

pub fn share(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=1.0).contains(&x) {
        return Err(format!("must be between 0 and 1 (got {s})"));
    }
    Ok(x)
}

/// `TOKENS:COUNT` of --shared-prefix.
pub fn prefix(s: &str) -> Result<(usize, usize)> {
    let (t, c) = s.split_once(':').unwrap_or((s, "1"));
    let t: usize = t
        .trim()
        .parse()
        .ok()
        .filter(|t| (1..=1 << 20).contains(t))
        .with_context(|| {
            format!(
                "--shared-prefix `{s}`: TOKENS must be a whole number from 1 to {}",
                1 << 20
            )
        })?;
    let c: usize = c
        .trim()
        .parse()
        .ok()
        .filter(|c| (1..=100_000).contains(c))
        .with_context(|| {
            format!("--shared-prefix `{s}`: COUNT must be a whole number from 1 to 100000")
        })?;
    Ok((t, c))
}

/// `ttft=500,tpot=50,e2e=10000` (milliseconds).
pub fn slo(s: &str) -> Result<Slo, String> {
    let mut slo = Slo::default();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: write NAME=MS (ttft, tpot or e2e)"))?;
        let ms = positive(v).map_err(|e| format!("{k}: {e}"))?;
        let d = Some(Duration::from_secs_f64(ms / 1e3));
        match k.trim() {
            "ttft" => slo.ttft = d,
            "tpot" => slo.tpot = d,
            "e2e" => slo.e2e = d,
            other => return Err(format!("`{other}` is not ttft, tpot or e2e")),
        }
    }
    if slo == Slo::default() {
        return Err("an SLO needs at least one of ttft=MS, tpot=MS, e2e=MS".into());
    }
    Ok(slo)
}
