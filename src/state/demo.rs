//! The demo on screen: its narration steps and the step shown. Its results are in the store.

use crate::preset::Preset;
use crate::protocol::{DemoRun, DemoSection};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemoView {
    /// The preset's name (or the demo's, replayed from a recording).
    pub name: String,
    /// The demo's kind (`sensitivity`), when a preset named it.
    pub kind: String,
    /// The narration, one entry per step.
    pub steps: Vec<String>,
    pub step: usize,
    /// The store's demos from this index on are this view's (results measured before it opened
    /// are another demo's).
    pub from: usize,
    /// The demo and prompt to run once a model is loaded (picked before one was).
    pub waiting: Option<(DemoSection, String)>,
    /// The steps filled with the result's numbers, and how many results the store held when
    /// they were: filled once per result, not once per frame.
    pub(crate) filled: std::cell::RefCell<Option<(usize, Vec<String>)>>,
}

impl DemoView {
    /// A view of the demos the store receives from index `from` on.
    pub fn new(from: usize) -> Self {
        Self {
            from,
            ..Self::default()
        }
    }

    pub fn from_preset(p: &Preset, from: usize) -> Self {
        Self {
            name: p.name.clone(),
            kind: p.demo.as_ref().map(|d| d.kind.clone()).unwrap_or_default(),
            steps: p.notes.clone(),
            ..Self::new(from)
        }
    }

    /// This demo's result, once measured.
    pub fn result<'a>(&self, demos: &'a [DemoRun]) -> Option<&'a DemoRun> {
        demos.get(self.from..).and_then(|d| d.last())
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

    /// The step on screen with this view's result in it: `fill` turns the steps into text for
    /// a result (or for none yet), and runs once per result, not once per frame. The store's
    /// `demos` say which result is this view's.
    pub fn narration_filled(
        &self,
        demos: &[DemoRun],
        fill: impl Fn(Option<&DemoRun>, &[String]) -> Vec<String>,
    ) -> Option<String> {
        self.narration()?;
        let mut filled = self.filled.borrow_mut();
        if filled.as_ref().is_none_or(|(n, _)| *n != demos.len()) {
            *filled = Some((demos.len(), fill(self.result(demos), &self.steps)));
        }
        filled.as_ref().and_then(|(_, s)| s.get(self.step).cloned())
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

    #[test]
    fn a_view_shows_only_results_measured_after_it_opened() {
        let run = |name: &str| DemoRun {
            demo: name.into(),
            model: "m".into(),
            threads: 1,
            result: crate::protocol::DemoResult::Roofline(Default::default()),
            stamp: None,
            costs: None,
        };
        let demos = vec![run("old")];
        let v = DemoView::new(1);
        assert!(v.result(&demos).is_none());
        let demos = vec![run("old"), run("new")];
        assert_eq!(v.result(&demos).unwrap().demo, "new");
    }
}
