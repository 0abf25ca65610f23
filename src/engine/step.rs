//! One forward step over many sequences: which rows it runs in which order, and how its products
//! group them so that every sequence gets, bit for bit, what it would get alone.
//!
//! Rows run with the short spans (decode rows, verification, chunks of at most
//! [`SMALL_BATCH`] tokens) first, then each long span (a prefill chunk). The short rows are
//! multiplied together, each exactly as a one-row product ([`crate::engine::kernels::QWeight::forward_each`]):
//! one read of the weights for every decode row of the batch. A long span is multiplied by itself,
//! as a prefill of it alone would be, or beside the step's other long spans when the product
//! computes each row on its own (every quantized CPU product; not float ones). Everything else in a layer (norms, RoPE, activations) works
//! row by row, and attention sequence by sequence.

use super::kernels::SMALL_BATCH;
use super::kv_cache::BlockTable;
use candle_core::{Result, Tensor};

/// One sequence's part of a step: the tokens to run after what its table holds.
#[derive(Debug)]
pub struct Seq<'a> {
    pub tokens: &'a [u32],
    pub table: &'a mut BlockTable,
}

/// A sequence's rows in the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the sequence in the step as given.
    pub seq: usize,
    /// First row in run order.
    pub row: usize,
    pub len: usize,
    /// Position of the first token (the tokens its table held before).
    pub pos: usize,
}

impl Span {
    pub fn is_short(&self) -> bool {
        self.len <= SMALL_BATCH
    }
}

/// The order a step's rows run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPlan {
    /// In run order: short spans first, then long ones, each group in the order given.
    pub spans: Vec<Span>,
    /// Rows of the short spans (they come first).
    pub short_rows: usize,
}

impl RowPlan {
    /// The plan for sequences of `(tokens, position)`.
    pub fn new(seqs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let all: Vec<(usize, usize)> = seqs.into_iter().collect();
        let mut spans = Vec::with_capacity(all.len());
        let mut row = 0;
        for short in [true, false] {
            for (seq, &(len, pos)) in all.iter().enumerate() {
                if (len <= SMALL_BATCH) == short {
                    spans.push(Span { seq, row, len, pos });
                    row += len;
                }
            }
        }
        let short_rows = spans.iter().filter(|s| s.is_short()).map(|s| s.len).sum();
        Self { spans, short_rows }
    }

    pub fn rows(&self) -> usize {
        self.spans.iter().map(|s| s.len).sum()
    }

    pub fn short(&self) -> impl Iterator<Item = &Span> {
        self.spans.iter().filter(|s| s.is_short())
    }

    pub fn long(&self) -> impl Iterator<Item = &Span> {
        self.spans.iter().filter(|s| !s.is_short())
    }

    /// Each row's position, in run order.
    pub fn positions(&self) -> Vec<u32> {
        self.spans
            .iter()
            .flat_map(|s| (s.pos..s.pos + s.len).map(|p| p as u32))
            .collect()
    }

    /// The row groups of a product: `(first row, rows, each row as alone)`. With `merge_long`
    /// (a product whose rows never depend on the other rows of the batch) the long spans share
    /// one group: one read of the weights for every prompt chunk of the step.
    pub fn groups(&self, merge_long: bool) -> Vec<(usize, usize, bool)> {
        let mut g = Vec::new();
        if self.short_rows > 0 {
            g.push((0, self.short_rows, true));
        }
        let long_rows = self.rows() - self.short_rows;
        if merge_long && long_rows > 0 {
            g.push((self.short_rows, long_rows, false));
        } else {
            g.extend(self.long().map(|s| (s.row, s.len, false)));
        }
        g
    }

    /// `x` (`(1, rows, k)`, rows in run order) through `f(rows, each)` group by group (see
    /// [`Self::groups`]), the results side by side in run order.
    pub fn product(
        &self,
        x: &Tensor,
        merge_long: bool,
        f: impl Fn(&Tensor, bool) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let groups = self.groups(merge_long);
        if let [(_, _, each)] = groups[..] {
            return f(x, each);
        }
        let parts = groups
            .iter()
            .map(|&(row, n, each)| f(&x.narrow(1, row, n)?, each))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_spans_run_first_and_long_ones_alone() {
        let long = SMALL_BATCH + 3;
        let p = RowPlan::new([(long, 0), (1, 40), (5, 7), (long + 1, 2)]);
        let order: Vec<(usize, usize)> = p.spans.iter().map(|s| (s.seq, s.row)).collect();
        assert_eq!(order, [(1, 0), (2, 1), (0, 6), (3, 6 + long)]);
        assert_eq!(p.short_rows, 6);
        assert_eq!(p.rows(), 6 + 2 * long + 1);
        assert_eq!(
            p.groups(false),
            [(0, 6, true), (6, long, false), (6 + long, long + 1, false)]
        );
        assert_eq!(p.groups(true), [(0, 6, true), (6, 2 * long + 1, false)]);
        let decode_only = RowPlan::new([(1, 3), (1, 9)]);
        assert_eq!(decode_only.groups(true), [(0, 2, true)]);
        assert_eq!(&p.positions()[..6], &[40, 7, 8, 9, 10, 11]);
    }
}
