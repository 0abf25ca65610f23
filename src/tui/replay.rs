//! Replay: a recording's events fed to the dashboard on their own clock, with pause, step and speed.

use crate::protocol::{Event, Stamped};
use std::time::Duration;

pub struct Replay {
    events: Vec<Stamped>,
    next: usize,
    /// Position on the recording's clock.
    pub at: Duration,
    pub speed: f64,
    pub paused: bool,
}

impl Replay {
    pub fn new(events: Vec<Stamped>, speed: f64) -> Self {
        Self {
            events,
            next: 0,
            at: Duration::ZERO,
            speed: speed.max(0.01),
            paused: false,
        }
    }

    pub fn done(&self) -> bool {
        self.next >= self.events.len()
    }

    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.events.len())
    }

    /// Events due after `wall` more time at the current speed (none while paused).
    pub fn advance(&mut self, wall: Duration) -> &[Stamped] {
        if !self.paused {
            self.at += wall.mul_f64(self.speed);
        }
        let start = self.next;
        while self.next < self.events.len() && self.events[self.next].at <= self.at {
            self.next += 1;
        }
        &self.events[start..self.next]
    }

    /// Events up to and including the next token (or the end).
    pub fn step(&mut self) -> &[Stamped] {
        let start = self.next;
        while self.next < self.events.len() {
            self.next += 1;
            if matches!(self.events[self.next - 1].event, Event::Token(_)) {
                break;
            }
        }
        if let Some(last) = self.events[..self.next].last() {
            self.at = self.at.max(last.at);
        }
        &self.events[start..self.next]
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed * 2.0).min(64.0);
    }

    pub fn slower(&mut self) {
        self.speed = (self.speed / 2.0).max(1.0 / 16.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Event;

    fn notice(ms: u64) -> Stamped {
        Stamped {
            at: Duration::from_millis(ms),
            event: Event::Notice {
                message: String::new(),
            },
        }
    }

    #[test]
    fn events_come_due_on_the_recordings_clock_scaled_by_speed() {
        let mut r = Replay::new(vec![notice(0), notice(100), notice(300)], 2.0);
        assert_eq!(r.advance(Duration::from_millis(10)).len(), 1);
        assert_eq!(r.advance(Duration::from_millis(50)).len(), 1); // at 120 ms
        r.paused = true;
        assert_eq!(r.advance(Duration::from_secs(10)).len(), 0);
        assert_eq!(r.step().len(), 1);
        assert!(r.done());
    }
}
