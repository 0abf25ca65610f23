//! Medusa's tree of candidates: instead of one chain of drafts (each head's likeliest token), a
//! small static tree also tries the heads' second and third choices. All of it is verified in
//! one pass with a tree attention mask ([`crate::engine::model::TreeMask`]); the accepted path
//! is the longest branch the target agrees with, and the cache keeps only that branch.

use super::super::model::TreeMask;
use super::super::sampling::argmax;
use super::accept::Acceptance;

/// The tree: each node is a path of candidate ranks, one per head (`[0, 1]` is head 1's second
/// choice below head 0's first). Parents come before their children; a prefix of this list cut
/// at any depth is a tree. Fifteen nodes: with the pending token, 16 rows, within the rows our
/// products give bitwise the same results for as for one row.
pub const NODES: &[&[u8]] = &[
    &[0],
    &[1],
    &[2],
    &[0, 0],
    &[0, 1],
    &[1, 0],
    &[0, 2],
    &[2, 0],
    &[0, 0, 0],
    &[0, 0, 1],
    &[0, 1, 0],
    &[1, 0, 0],
    &[0, 0, 0, 0],
    &[0, 0, 0, 1],
    &[0, 0, 1, 0],
];

/// Candidates to verify: a token per node and its parent node (`None`: below the pending token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidates {
    pub tokens: Vec<u32>,
    pub parent: Vec<Option<usize>>,
    /// The nodes' rank paths.
    pub ranks: Vec<&'static [u8]>,
}

impl Candidates {
    /// The tree cut at `depth`, its tokens read from each head's ranked choices
    /// (`ranked[h][r]`: head `h`'s `r`-th likeliest token).
    pub fn from_ranked(ranked: &[Vec<u32>], depth: usize) -> Self {
        let mut c = Self::default();
        for &node in NODES.iter().filter(|n| n.len() <= depth.min(ranked.len())) {
            let d = node.len() - 1;
            let Some(&token) = ranked[d].get(node[d] as usize) else {
                continue;
            };
            let parent = match d {
                0 => None,
                _ => match c.ranks.iter().position(|r| *r == &node[..d]) {
                    Some(p) => Some(p),
                    None => continue,
                },
            };
            c.tokens.push(token);
            c.parent.push(parent);
            c.ranks.push(node);
        }
        c
    }

    /// The verification pass's rows: the pending token (row 0) and the nodes (row `i + 1`).
    pub fn mask(&self) -> TreeMask {
        let mut parent = vec![None];
        parent.extend(self.parent.iter().map(|p| Some(p.map_or(0, |p| p + 1))));
        TreeMask { parent }
    }

    /// The deepest node's depth.
    pub fn depth(&self) -> usize {
        self.ranks.iter().map(|r| r.len()).max().unwrap_or(0)
    }

    /// Walk down from the pending token: at each row, the first child (in rank order) that
    /// `rule` keeps given that row's logits. Returns the accepted nodes' rows (node `i` is row
    /// `i + 1`) and the target's token after the last, from `rows` (logits per row).
    pub fn walk(&self, rows: &[Vec<f32>], rule: Acceptance) -> (Vec<usize>, u32) {
        let mut at = 0;
        let mut path = Vec::new();
        loop {
            let kept = (0..self.tokens.len()).find(|&i| {
                self.parent[i].map_or(0, |p| p + 1) == at
                    && rule.keeps_greedy(&rows[at], self.tokens[i])
            });
            match kept {
                Some(i) => {
                    at = i + 1;
                    path.push(at);
                }
                None => break,
            }
        }
        (path, argmax(&rows[at]) as u32)
    }

    /// The drafts a step shows for `path`: the accepted tokens, then the likeliest candidates
    /// below them down to the tree's depth (what a chain would have drafted there).
    pub fn shown(&self, path: &[usize]) -> Vec<u32> {
        let mut out: Vec<u32> = path.iter().map(|&r| self.tokens[r - 1]).collect();
        let mut at = path.last().map_or(0, |&r| r);
        while let Some(i) = (0..self.tokens.len()).find(|&i| {
            self.parent[i].map_or(0, |p| p + 1) == at && self.ranks[i].last() == Some(&0)
        }) {
            out.push(self.tokens[i]);
            at = i + 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked() -> Vec<Vec<u32>> {
        vec![
            vec![10, 11, 12],
            vec![20, 21, 22],
            vec![30, 31, 32],
            vec![40, 41, 42],
        ]
    }

    #[test]
    fn the_tree_is_cut_by_depth_and_parents_come_first() {
        let c = Candidates::from_ranked(&ranked(), 2);
        assert_eq!(c.tokens, [10, 11, 12, 20, 21, 20, 22, 20]);
        assert_eq!(
            c.parent,
            [
                None,
                None,
                None,
                Some(0),
                Some(0),
                Some(1),
                Some(0),
                Some(2)
            ]
        );
        assert_eq!(c.depth(), 2);
        let m = c.mask();
        assert_eq!(m.parent[0], None);
        assert_eq!(m.path(6), [2, 6], "row 6 is [1, 0], below row 2 ([1])");
        let full = Candidates::from_ranked(&ranked(), 9);
        assert_eq!(full.tokens.len(), NODES.len());
        assert!(NODES.len() < crate::engine::kernels::SMALL_BATCH);
        // Fewer heads than depth: the tree stops at the heads.
        assert_eq!(
            Candidates::from_ranked(&ranked()[..1], 4).tokens,
            [10, 11, 12]
        );
    }

    /// Logits whose argmax is `t`.
    fn row(t: u32) -> Vec<f32> {
        let mut r = vec![0.0; 50];
        r[t as usize] = 1.0;
        r
    }

    #[test]
    fn the_walk_takes_the_longest_branch_the_target_agrees_with() {
        let c = Candidates::from_ranked(&ranked(), 3);
        // The target says 11 after pending, then 20, then 5: the branch [1] → [1,0], then stop.
        let mut rows = vec![row(0); c.tokens.len() + 1];
        rows[0] = row(11);
        let r1 = 2; // node [1]
        rows[r1] = row(20);
        let r10 = 1 + c.ranks.iter().position(|r| *r == [1, 0]).unwrap();
        rows[r10] = row(5);
        let (path, token) = c.walk(&rows, Acceptance::Greedy);
        assert_eq!(path, [r1, r10]);
        assert_eq!(token, 5);
        assert_eq!(
            c.shown(&path),
            [11, 20, 30],
            "accepted, then the chain below"
        );
        // Nothing agrees: no path, the target's own token.
        rows[0] = row(7);
        assert_eq!(c.walk(&rows, Acceptance::Greedy), (vec![], 7));
    }
}
