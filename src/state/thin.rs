//! A series thinned to a bounded length that always spans the whole run: every `stride`-th item
//! is kept, and when the series is full every other kept item is dropped and the stride doubles.

/// Items a thinned series keeps by default (more than any chart is wide).
pub const POINTS: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub struct Thinned<T> {
    items: Vec<T>,
    cap: usize,
    /// Items pushed between two kept ones.
    stride: usize,
    pushed: usize,
}

impl<T> Default for Thinned<T> {
    fn default() -> Self {
        Self::new(POINTS)
    }
}

impl<T> Thinned<T> {
    /// A series of at most `cap` items (at least 2; rounded up to even, so halving keeps the first).
    pub fn new(cap: usize) -> Self {
        Self {
            items: Vec::new(),
            cap: cap.max(2).next_multiple_of(2),
            stride: 1,
            pushed: 0,
        }
    }

    /// Take the next item of the series; kept when its position is a multiple of the stride.
    pub fn push(&mut self, x: T) {
        let at = self.pushed;
        self.pushed += 1;
        if !at.is_multiple_of(self.stride) {
            return;
        }
        if self.items.len() == self.cap {
            // Keep the items at even positions: those at multiples of the doubled stride.
            let mut i = 0;
            self.items.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
            if !at.is_multiple_of(self.stride) {
                return;
            }
        }
        self.items.push(x);
    }

    /// The kept items, first pushed first: items 0, stride, 2 × stride, …
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The first item pushed (always kept).
    pub fn first(&self) -> Option<&T> {
        self.items.first()
    }

    /// Items pushed between two kept ones.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Items pushed in all.
    pub fn pushed(&self) -> usize {
        self.pushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_item_until_full() {
        let mut t = Thinned::new(4);
        (0..4).for_each(|i| t.push(i));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(t.stride(), 1);
    }

    #[test]
    fn full_halves_and_doubles_the_stride() {
        let mut t = Thinned::new(4);
        (0..5).for_each(|i| t.push(i));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![0, 2, 4]);
        assert_eq!(t.stride(), 2);
        (5..100).for_each(|i| t.push(i));
        let kept: Vec<_> = t.iter().copied().collect();
        assert!(kept.len() <= 4, "{kept:?}");
        assert_eq!(kept[0], 0);
        assert!(kept.iter().all(|k| k % t.stride() == 0), "{kept:?}");
        assert_eq!(t.pushed(), 100);
    }

    #[test]
    fn a_million_items_stay_bounded_and_even() {
        let mut t = Thinned::new(POINTS);
        (0..1_000_000usize).for_each(|i| t.push(i));
        assert!(t.len() <= POINTS && t.len() > POINTS / 2, "{}", t.len());
        let kept: Vec<_> = t.iter().copied().collect();
        assert!(kept.windows(2).all(|w| w[1] - w[0] == t.stride()));
        assert!(1_000_000 - kept.last().unwrap() <= t.stride());
    }
}
