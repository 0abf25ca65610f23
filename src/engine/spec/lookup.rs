//! Prompt-lookup drafting: the continuation of the most recent earlier occurrence of the text's
//! last n tokens (n from `max_ngram` down to 1) is proposed as the draft. No second model.

/// Up to `k` tokens that followed the latest earlier match of the last `n` tokens of `tokens`,
/// trying n from `max_ngram` down to `min_ngram`. Empty when nothing matches.
pub fn propose(tokens: &[u32], k: usize, min_ngram: usize, max_ngram: usize) -> Vec<u32> {
    let len = tokens.len();
    for n in (min_ngram.max(1)..=max_ngram.min(len.saturating_sub(1))).rev() {
        let pattern = &tokens[len - n..];
        // Latest match first: recent text predicts the next tokens best (a rewrite walks the
        // input in order). The match must end before the pattern itself starts.
        for start in (0..len - n).rev() {
            if &tokens[start..start + n] == pattern {
                let from = start + n;
                let to = (from + k).min(len);
                if to > from {
                    return tokens[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_the_latest_longest_match() {
        // "1 2 3 4 | 9 2 3 5 | 2 3" → the trigram fails, the bigram "2 3" last matched before 5.
        let t = [1, 2, 3, 4, 9, 2, 3, 5, 2, 3];
        assert_eq!(propose(&t, 3, 1, 3), vec![5, 2, 3]);
        // A trigram match wins over a later bigram match.
        let t = [7, 2, 3, 4, 9, 2, 3, 5, 7, 2, 3];
        assert_eq!(propose(&t, 2, 1, 3), vec![4, 9]);
    }

    #[test]
    fn proposes_nothing_without_a_match_and_never_more_than_k() {
        assert!(propose(&[1, 2, 3, 4], 4, 1, 3).is_empty());
        assert!(propose(&[5], 4, 1, 3).is_empty());
        let t = [1, 2, 3, 4, 5, 6, 1, 2];
        assert_eq!(propose(&t, 2, 2, 2), vec![3, 4]);
        // The continuation is cut where the text ends.
        let t = [8, 8];
        assert_eq!(propose(&t, 4, 1, 3), vec![8]);
        // A single repeated token is not evidence enough when two are required.
        assert!(propose(&t, 4, 2, 3).is_empty());
    }
}
