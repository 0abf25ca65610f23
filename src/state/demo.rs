//! The demo being shown: its narration steps, the step on screen, and its results once they come.

use crate::demo::DemoRun;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemoView {
    /// The preset's name (or the demo's, replayed from a recording).
    pub name: String,
    /// The narration, one entry per step.
    pub steps: Vec<String>,
    pub step: usize,
    pub result: Option<DemoRun>,
    /// The demo and prompt to run once a model is loaded (picked before one was).
    pub waiting: Option<(crate::demo::DemoSection, String)>,
}

impl DemoView {
    pub fn from_preset(p: &crate::preset::Preset) -> Self {
        Self {
            name: p.name.clone(),
            steps: p.notes.clone(),
            ..Self::default()
        }
    }

    pub fn next(&mut self) {
        self.step = (self.step + 1).min(self.steps.len().saturating_sub(1));
    }

    pub fn prev(&mut self) {
        self.step = self.step.saturating_sub(1);
    }

    /// The narration on screen, if any.
    pub fn narration(&self) -> Option<&str> {
        self.steps.get(self.step).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_in_range() {
        let mut d = DemoView {
            steps: vec!["a".into(), "b".into()],
            ..DemoView::default()
        };
        d.prev();
        assert_eq!(d.narration(), Some("a"));
        d.next();
        d.next();
        assert_eq!((d.step, d.narration()), (1, Some("b")));
        let mut empty = DemoView::default();
        empty.next();
        assert_eq!((empty.step, empty.narration()), (0, None));
    }
}
