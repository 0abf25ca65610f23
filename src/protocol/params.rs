//! The limits of [`GenParams`]: one check per field, used by the command line's parsers, the preset
//! loader and the recording loader alike. Each error starts with the value and ends with the limit.

use super::GenParams;

/// Most tokens one run may generate: the longest context a model may declare
/// (`engine::config::MAX_CONTEXT`); a run stops earlier when its context is full.
pub const MAX_TOKENS: usize = 1 << 20;
/// Hottest sampling temperature (past a few, sampling is uniform noise).
pub const MAX_TEMPERATURE: f32 = 10.0;
/// Largest top-k: the largest vocabulary a model may declare (`engine::config::MAX_VOCAB`).
pub const MAX_TOP_K: usize = 1 << 22;

pub fn max_tokens(n: usize) -> Result<usize, String> {
    if (1..=MAX_TOKENS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range (1 to {MAX_TOKENS})"))
    }
}

pub fn temperature(t: f32) -> Result<f32, String> {
    if (0.0..=MAX_TEMPERATURE).contains(&t) {
        Ok(t)
    } else {
        Err(format!(
            "{t} is out of range (0 to {MAX_TEMPERATURE}; 0 is greedy)"
        ))
    }
}

pub fn top_p(p: f32) -> Result<f32, String> {
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("{p} is out of range (above 0, at most 1)"))
    }
}

pub fn top_k(k: usize) -> Result<usize, String> {
    if (1..=MAX_TOP_K).contains(&k) {
        Ok(k)
    } else {
        Err(format!("{k} is out of range (1 to {MAX_TOP_K})"))
    }
}

impl GenParams {
    /// Every field within its limit; the error names the field, its value and the limit.
    pub fn validate(&self) -> Result<(), String> {
        fn field(name: &'static str) -> impl Fn(String) -> String {
            move |e| format!("params {name} = {e}")
        }
        max_tokens(self.max_tokens).map_err(field("max_tokens"))?;
        temperature(self.temperature).map_err(field("temperature"))?;
        if let Some(p) = self.top_p {
            top_p(p).map_err(field("top_p"))?;
        }
        if let Some(k) = self.top_k {
            top_k(k).map_err(field("top_k"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_is_named_with_its_value_and_limit() {
        assert_eq!(GenParams::default().validate(), Ok(()));
        let bad = |p: GenParams| p.validate().unwrap_err();
        let d = GenParams::default;
        assert_eq!(
            bad(GenParams {
                max_tokens: 0,
                ..d()
            }),
            "params max_tokens = 0 is out of range (1 to 1048576)"
        );
        assert!(bad(GenParams {
            temperature: f32::NAN,
            ..d()
        })
        .starts_with("params temperature = NaN is out of range"));
        assert!(bad(GenParams {
            temperature: f32::INFINITY,
            ..d()
        })
        .starts_with("params temperature = inf"));
        assert!(bad(GenParams {
            top_p: Some(0.0),
            ..d()
        })
        .starts_with("params top_p = 0 is out of range (above 0, at most 1)"));
        assert!(bad(GenParams {
            top_k: Some(0),
            ..d()
        })
        .starts_with("params top_k = 0"));
        assert_eq!(top_p(1.0), Ok(1.0));
        assert_eq!(temperature(0.0), Ok(0.0));
    }
}
